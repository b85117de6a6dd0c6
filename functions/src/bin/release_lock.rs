//! Lambda entry point of the `ReleaseLock` state: `steps::release_lock` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("ReleaseLock")
}
