//! Lambda entry point of the `EnsureStageStack` state: `steps::ensure_stage_stack` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("EnsureStageStack")
}
