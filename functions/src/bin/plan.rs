//! Lambda entry point of the `Plan` state: `steps::plan` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("Plan")
}
