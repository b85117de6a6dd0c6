//! Lambda entry point of the `RecordDeployment` state: `steps::record_deployment` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("RecordDeployment")
}
