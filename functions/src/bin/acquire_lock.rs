//! Lambda entry point of the `AcquireLock` state: `steps::acquire_lock` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("AcquireLock")
}
