//! Compiles the vendored fpzip 1.3.0 as a static library, with the settings of its own CMake
//! build (fast floating point, 4096-byte I/O blocks). Only a C++ compiler is needed.

fn main() {
    let src = std::path::Path::new("fpzip/src");
    let files = [
        "error.cpp",
        "rcdecoder.cpp",
        "rcencoder.cpp",
        "rcqsmodel.cpp",
        "read.cpp",
        "version.cpp",
        "write.cpp",
    ];
    cc::Build::new()
        .cpp(true)
        .std("c++98")
        .include("fpzip/include")
        .include(src)
        .define("FPZIP_FP", "FPZIP_FP_FAST")
        .define("FPZIP_BLOCK_SIZE", "4096")
        .warnings(false)
        .files(files.iter().map(|f| src.join(f)))
        .compile("fpzip");
    println!("cargo:rerun-if-changed=fpzip");
}
