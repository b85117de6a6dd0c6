//! Lambda entry point of the `RecordFailure` state: `steps::record_failure` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("RecordFailure")
}
