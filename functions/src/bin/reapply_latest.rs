//! Lambda entry point of the `ReapplyLatest` state: `steps::reapply_latest` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("ReapplyLatest")
}
