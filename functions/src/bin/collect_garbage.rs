//! Lambda entry point of the `CollectGarbage` state: `steps::collect_garbage` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("CollectGarbage")
}
