//! Lambda entry point of the `BreakStaleLocks` state: `steps::break_stale_locks` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("BreakStaleLocks")
}
