//! Lambda entry point of the `DeleteStack` state: `steps::delete_stack` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("DeleteStack")
}
