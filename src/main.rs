//! The `xdptcp` binary.

mod cli;

fn main() {
    // `serve --config FILE` folds the file into the arguments before clap sees them.
    let args = cli::config::parse_cli();
    let r = match &args.cmd {
        cli::Cmd::Serve(a) if a.backend == cli::BackendArg::Kernel => cli::serve_kernel(a),
        #[cfg(feature = "xdp")]
        cli::Cmd::Serve(a) => cli::serve::serve(a),
        #[cfg(not(feature = "xdp"))]
        cli::Cmd::Serve(_) => Err(anyhow::anyhow!("the xdp backend needs the `xdp` feature (or use --backend kernel)")),
        cli::Cmd::Demo(a) => cli::demo::demo(a),
        cli::Cmd::Kclient(a) => cli::kclient(a),
        cli::Cmd::Stats(a) => cli::stats(a),
        cli::Cmd::Ss(a) => cli::ss::ss(a),
        cli::Cmd::Flood(a) => cli::flood(a),
        #[cfg(feature = "xdp")]
        cli::Cmd::XdpAttach(a) => cli::xdp_attach(a),
        #[cfg(not(feature = "xdp"))]
        cli::Cmd::XdpAttach(_) => Err(anyhow::anyhow!("xdp-attach needs the `xdp` feature")),
        cli::Cmd::Bench(b) => match b {
            cli::bench::BenchCmd::Connect(a) => cli::bench::connect(a),
            cli::bench::BenchCmd::Flood(a) => cli::bench::flood(a),
            cli::bench::BenchCmd::Bulk(a) => cli::bench::bulk(a),
            cli::bench::BenchCmd::Compare(a) => cli::bench::compare(a),
            cli::bench::BenchCmd::Loss(a) => cli::bench::loss(a),
            cli::bench::BenchCmd::Proxy(a) => cli::bench_proxy::run(a),
        },
    };
    if let Err(e) = r {
        eprintln!("xdptcp: {e:#}");
        std::process::exit(1);
    }
}
