//! Lambda entry point of the `DeleteAliases` state: `steps::delete_aliases` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("DeleteAliases")
}
