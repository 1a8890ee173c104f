fn main() {
    // The `Py_LIMITED_API` (abi3) and version cfgs of the interpreter pyo3 builds for.
    #[cfg(feature = "python")]
    pyo3_build_config::use_pyo3_cfgs();
}
