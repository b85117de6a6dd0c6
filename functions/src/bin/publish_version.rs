//! Lambda entry point of the `PublishVersion` state: `steps::publish_version` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("PublishVersion")
}
