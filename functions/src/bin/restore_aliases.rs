//! Lambda entry point of the `RestoreAliases` state: `steps::restore_aliases` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("RestoreAliases")
}
