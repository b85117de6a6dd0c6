//! Lambda entry point of the `WireStage` state: `steps::wire_stage` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("WireStage")
}
