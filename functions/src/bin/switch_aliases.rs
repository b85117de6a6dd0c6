//! Lambda entry point of the `SwitchAliases` state: `steps::switch_aliases` behind the Lambda runtime.

fn main() -> Result<(), lambda_runtime::Error> {
    functions::lambda::main("SwitchAliases")
}
