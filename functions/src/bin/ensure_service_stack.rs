//! Lambda entry point of the `EnsureServiceStack` state: `steps::ensure_service_stack` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("EnsureServiceStack")
}
