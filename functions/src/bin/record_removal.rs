//! Lambda entry point of the `RecordRemoval` state: `steps::record_removal` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("RecordRemoval")
}
