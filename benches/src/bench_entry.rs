//! `cargo bench -p rmi-bench`: runs the suite binary (quick settings unless
//! `RMI_BENCH_FULL=1`), passing on any extra arguments.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if std::env::var_os("RMI_BENCH_FULL").is_none() && !args.iter().any(|a| a == "--quick") {
        args.push("--quick".into());
    }
    match Command::new(env!("CARGO_BIN_EXE_rmi-bench")).args(&args).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cannot run rmi-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
