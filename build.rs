//! Build script: with feature `xdp`, compiles the XDP programs in `bpf/` with clang and
//! generates their libbpf-rs skeletons into `$OUT_DIR`: `bpf/steer.bpf.c` into
//! `steer.skel.rs`, `bpf/synack_tx.bpf.c` (the SYN-ACK ceiling) into `synack_tx.skel.rs`.
//! Without the feature it does nothing, and libbpf-cargo (an optional build-dependency) is
//! not even compiled.

fn main() {
    // The cfg keeps the optional build-dependency libbpf-cargo out of builds without `xdp`;
    // CARGO_FEATURE_XDP (set by Cargo for the build script) is the run-time check the
    // cfg mirrors.
    #[cfg(feature = "xdp")]
    if std::env::var_os("CARGO_FEATURE_XDP").is_some() {
        bpf::build();
    }
}

#[cfg(feature = "xdp")]
mod bpf {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use libbpf_cargo::SkeletonBuilder;

    /// `(source, skeleton file in OUT_DIR)` of every program.
    const PROGRAMS: [(&str, &str); 2] =
        [("bpf/steer.bpf.c", "steer.skel.rs"), ("bpf/synack_tx.bpf.c", "synack_tx.skel.rs")];

    pub fn build() {
        rerun_if_changed_dir(Path::new("bpf"));
        println!("cargo:rerun-if-env-changed=XDPTCP_BPF_CFLAGS");
        println!("cargo:rerun-if-env-changed=CLANG");

        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        // libbpf-cargo adds `-I` for the bpf_helpers.h that libbpf-sys vendors, plus
        // -D__TARGET_ARCH_*, -g -O2 -target bpf. The system's linux/*.h include
        // <asm/types.h>, which lives in the multiarch directory on Debian.
        let mut args = vec![format!("-I{}", multiarch_include()), "-Wall".to_owned(), "-Werror".to_owned()];
        if let Ok(extra) = std::env::var("XDPTCP_BPF_CFLAGS") {
            args.extend(extra.split_whitespace().map(str::to_owned));
        }

        for (src, skel) in PROGRAMS {
            skeleton(src, &out.join(skel), &args);
        }
    }

    /// Compiles `src` with `args` and writes its skeleton to `skel`; panics with clang's
    /// output on failure.
    fn skeleton(src: &str, skel: &Path, args: &[String]) {
        let mut builder = SkeletonBuilder::new();
        builder.source(src).clang_args(args);
        if let Some(clang) = std::env::var_os("CLANG") {
            builder.clang(clang);
        }
        if let Err(e) = builder.build_and_generate(skel) {
            // `{:#}` prints the whole anyhow chain, including clang's stderr.
            panic!(
                "building the XDP program {src} failed: {e:#}\n\
                 (needs clang and the kernel uapi headers: \
                 apt-get install clang libelf-dev zlib1g-dev linux-libc-dev)"
            );
        }
    }

    fn rerun_if_changed_dir(dir: &Path) {
        println!("cargo:rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }

    /// `/usr/include/<multiarch>`: asked of the C compiler, else derived from the target.
    fn multiarch_include() -> String {
        for cc in ["gcc", "clang"] {
            if let Ok(out) = Command::new(cc).arg("-print-multiarch").output() {
                let triple = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !triple.is_empty() {
                    return format!("/usr/include/{triple}");
                }
            }
        }
        let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
        format!("/usr/include/{arch}-linux-gnu")
    }
}
