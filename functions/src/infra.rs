//! Test only: `infra/deployer.json` from its sources, and the tests that keep them in step.
//!
//! The template is generated, not written by hand, because most of it follows from other files:
//! one `<Step>Function`, `<Step>Role` and `<Step>LogGroup` per name of [`steps::NAMES`] (the
//! role's grants from [`grants`] below), one `<Operation>StateMachine` per
//! `statemachines/<operation>.asl.json` with the definition inlined as `DefinitionString` and
//! each `${<Step>FunctionArn}` bound in `DefinitionSubstitutions`, and roles that may invoke or
//! start exactly those. The table, the bucket and its policy, which `bootstrap --engine local`
//! extracts by name, are copied from the file as they are.
//!
//! `ALIASFLOW_WRITE_INFRA=1 cargo test -p functions --lib infra` rewrites the file; without it
//! the test fails while the file is out of date.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::deployer::{BUCKET_OUTPUT, LOCAL_RESOURCES, TABLE_OUTPUT};
use crate::steps;

/// What a step's role may do beyond writing its own logs.
struct Grant {
    sid: &'static str,
    actions: &'static [&'static str],
    on: Scope,
}

/// What a grant applies to.
enum Scope {
    /// The history table.
    Table,
    /// The artifact bucket itself (`s3:ListBucket`: without it a missing key reads as 403).
    Bucket,
    /// Objects of the artifact bucket whose keys match these patterns.
    Objects(&'static [&'static str]),
    /// The managed services' functions, their versions and aliases, in any region.
    Functions,
    /// The managed services' stacks (`<service>`, `<service>-<stage>`), in any region.
    Stacks,
}

const HISTORY_READ: &[&str] = &["dynamodb:GetItem", "dynamodb:Query"];
/// `History::record` is a TransactWriteItems of a lock check and two Puts: IAM checks
/// `ConditionCheckItem` and `PutItem` for them, and reads the refused item back with `GetItem`.
const HISTORY_RECORD: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"];
const LEASES: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"];
/// The service lease and record, and the reads of which stages use a function.
const SERVICE_STACK_HISTORY: &[&str] =
    &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"];
const STACK_CHANGES: &[&str] = &[
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:DeleteStack",
];
/// Lambda reads the code of `UpdateFunctionCode` (and CloudFormation's `CreateFunction`) from S3
/// with the caller's permissions.
const CODE: Scope = Scope::Objects(&["*/artifacts/*"]);
const PLACEHOLDER: Scope = Scope::Objects(&["aliasflow/placeholder.zip"]);

/// The grants of each step's role: the AWS calls of the ports it uses (`functions/src/aws/`).
fn grants(step: &str) -> &'static [Grant] {
    match step {
        "Plan" => &[
            Grant { sid: "History", actions: HISTORY_READ, on: Scope::Table },
            // The manifest (`manifest_key`) and a check that each artifact is uploaded.
            Grant {
                sid: "ManifestsAndArtifacts",
                actions: &["s3:GetObject"],
                on: Scope::Objects(&["*/manifests/*", "*/artifacts/*"]),
            },
            Grant { sid: "ArtifactBucket", actions: &["s3:ListBucket"], on: Scope::Bucket },
        ],
        "AcquireLock" | "ReleaseLock" => &[Grant { sid: "Leases", actions: LEASES, on: Scope::Table }],
        "EnsureServiceStack" => &[
            Grant { sid: "Stacks", actions: STACK_CHANGES, on: Scope::Stacks },
            // The service record under the service lease, and the stages' deployments that tell
            // which dropped functions are still used.
            Grant { sid: "ServiceRecordAndLease", actions: SERVICE_STACK_HISTORY, on: Scope::Table },
            // Templates too large to pass inline; CloudFormation reads them as the caller.
            Grant {
                sid: "LargeTemplates",
                actions: &["s3:PutObject", "s3:GetObject"],
                on: Scope::Objects(&["aliasflow/templates/*"]),
            },
            Grant { sid: "PlaceholderCode", actions: &["s3:GetObject"], on: PLACEHOLDER },
        ],
        "EnsureStageStack" => &[
            Grant { sid: "Stacks", actions: STACK_CHANGES, on: Scope::Stacks },
            // Large templates (`aliasflow/templates/`) and the kept stage templates
            // (`<service>/templates/`) that rollback returns to.
            Grant {
                sid: "Templates",
                actions: &["s3:PutObject", "s3:GetObject"],
                on: Scope::Objects(&["*/templates/*"]),
            },
            Grant { sid: "PlaceholderCode", actions: &["s3:GetObject"], on: PLACEHOLDER },
            Grant { sid: "ArtifactBucket", actions: &["s3:ListBucket"], on: Scope::Bucket },
        ],
        "PublishVersion" => &[
            Grant { sid: "PublishLeaseAndVersions", actions: LEASES, on: Scope::Table },
            Grant {
                sid: "Functions",
                actions: &[
                    "lambda:GetFunctionConfiguration",
                    "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration",
                    "lambda:PublishVersion",
                ],
                on: Scope::Functions,
            },
            Grant { sid: "Code", actions: &["s3:GetObject"], on: CODE },
        ],
        "SwitchAliases" => {
            &[Grant { sid: "Aliases", actions: &["lambda:UpdateAlias", "lambda:CreateAlias"], on: Scope::Functions }]
        }
        "WireStage" => &[Grant {
            sid: "AliasPermissions",
            actions: &["lambda:AddPermission", "lambda:GetPolicy", "lambda:GetFunctionConfiguration"],
            on: Scope::Functions,
        }],
        "RecordDeployment" => &[
            Grant { sid: "Record", actions: HISTORY_RECORD, on: Scope::Table },
            // Pruning to `retain`: the stage's deployments, oldest deleted in batches.
            Grant { sid: "Prune", actions: &["dynamodb:Query", "dynamodb:BatchWriteItem"], on: Scope::Table },
        ],
        "RecordFailure" | "RecordRemoval" => &[Grant { sid: "Record", actions: HISTORY_RECORD, on: Scope::Table }],
        "RestoreAliases" => &[Grant {
            sid: "Aliases",
            actions: &["lambda:UpdateAlias", "lambda:CreateAlias", "lambda:DeleteAlias"],
            on: Scope::Functions,
        }],
        "ReapplyLatest" => &[
            Grant {
                sid: "Functions",
                actions: &[
                    "lambda:GetFunctionConfiguration",
                    "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration",
                ],
                on: Scope::Functions,
            },
            Grant { sid: "Code", actions: &["s3:GetObject"], on: CODE },
        ],
        "DeleteAliases" => &[Grant { sid: "Aliases", actions: &["lambda:DeleteAlias"], on: Scope::Functions }],
        "DeleteStack" => &[
            Grant {
                sid: "Stacks",
                actions: &[
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:DeleteStack",
                ],
                on: Scope::Stacks,
            },
            Grant { sid: "ServiceRecord", actions: &["dynamodb:DeleteItem"], on: Scope::Table },
        ],
        "CollectGarbage" => &[
            // Deletes, and the service stack's record and lease (`EnsureServiceStack`'s code).
            Grant { sid: "History", actions: SERVICE_STACK_HISTORY, on: Scope::Table },
            // A shared function no live stage uses leaves the service stack.
            Grant { sid: "Stacks", actions: STACK_CHANGES, on: Scope::Stacks },
            Grant {
                sid: "LargeTemplates",
                actions: &["s3:PutObject", "s3:GetObject"],
                on: Scope::Objects(&["aliasflow/templates/*"]),
            },
            Grant { sid: "PlaceholderCode", actions: &["s3:GetObject"], on: PLACEHOLDER },
            Grant {
                sid: "Versions",
                actions: &["lambda:ListAliases", "lambda:ListVersionsByFunction", "lambda:DeleteFunction"],
                on: Scope::Functions,
            },
            Grant { sid: "ArtifactBucket", actions: &["s3:ListBucket"], on: Scope::Bucket },
            Grant {
                sid: "UnreferencedObjects",
                actions: &["s3:DeleteObject"],
                on: Scope::Objects(&["*/artifacts/*", "*/templates/*"]),
            },
        ],
        "BreakStaleLocks" => &[Grant {
            sid: "LocksAndHistory",
            actions: &[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
            ],
            on: Scope::Table,
        }],
        other => panic!("no IAM grants for step {other}: add its AWS calls to `grants` in functions/src/infra.rs"),
    }
}

/// Steps whose CloudFormation calls create, update or delete the services' resources: the
/// stack operations run with the caller's permissions, so their roles also get
/// `StackResourcesPolicy` (and the optional `StackResourcePolicyArn`).
const STACK_STEPS: &[&str] = &["EnsureServiceStack", "EnsureStageStack", "DeleteStack", "CollectGarbage"];

/// Steps that wait for CloudFormation or walk a whole service: Lambda's longest timeout.
const LONG_STEPS: &[&str] = &["EnsureServiceStack", "EnsureStageStack", "DeleteStack", "CollectGarbage"];

/// The physical names of the deployer's own functions and state machines start with this.
const PREFIX: &str = "aliasflow";

/// The environment variables the handlers read the deployer's names from
/// (`functions::lambda`, whose tests check these against its own constants).
pub(crate) const TABLE_VAR: &str = "ALIASFLOW_TABLE";
pub(crate) const BUCKET_VAR: &str = "ALIASFLOW_BUCKET";

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn pascal_case(snake: &str) -> String {
    snake
        .split(['_', '-'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn scope(scope: &Scope) -> Value {
    match scope {
        Scope::Table => json!([get_att("HistoryTable", "Arn")]),
        Scope::Bucket => json!([get_att("ArtifactBucket", "Arn")]),
        Scope::Objects(patterns) => {
            Value::Array(patterns.iter().map(|p| sub(&format!("${{ArtifactBucket.Arn}}/{p}"))).collect())
        }
        Scope::Functions => {
            json!([sub("arn:${AWS::Partition}:lambda:*:${AWS::AccountId}:function:${ServiceNamePattern}")])
        }
        Scope::Stacks => {
            json!([sub("arn:${AWS::Partition}:cloudformation:*:${AWS::AccountId}:stack/${ServiceNamePattern}/*")])
        }
    }
}

fn allow(sid: &str, actions: &[&str], resources: Value) -> Value {
    let mut statement = json!({ "Sid": sid, "Effect": "Allow", "Action": actions });
    statement["Resource"] = resources;
    statement
}

fn policy(name: &str, statements: Vec<Value>) -> Value {
    let mut document = json!({ "Version": "2012-10-17" });
    document["Statement"] = Value::Array(statements);
    json!({ "PolicyName": name, "PolicyDocument": document })
}

fn assume_role(principal: Value, condition: Option<Value>) -> Value {
    let mut statement = json!({ "Effect": "Allow", "Action": "sts:AssumeRole" });
    statement["Principal"] = principal;
    if let Some(condition) = condition {
        statement["Condition"] = condition;
    }
    json!({ "Version": "2012-10-17", "Statement": [statement] })
}

/// Denies `actions` on the deployer's own functions, stack, roles and log groups.
fn deny_on_deployer(actions: &[&str]) -> Value {
    let own = |service: &str, resource: &str| {
        sub(&format!("arn:${{AWS::Partition}}:{service}:${{AWS::AccountId}}:{resource}"))
    };
    json!({
        "Sid": "KeepTheDeployer",
        "Effect": "Deny",
        "Action": actions,
        "Resource": [
            own("lambda:*", &format!("function:{PREFIX}-*")),
            own("cloudformation:*", &format!("stack/{PREFIX}/*")),
            own("iam:", &format!("role/{PREFIX}-*")),
            own("logs:*", &format!("log-group:/aws/lambda/{PREFIX}-*"))
        ]
    })
}

/// The state machine definitions: (operation, text), by file name.
fn definitions() -> Vec<(String, String)> {
    let folder = repository().join("statemachines");
    let mut found: Vec<(String, String)> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let operation = path.file_name()?.to_str()?.strip_suffix(".asl.json")?.to_owned();
            Some((operation, std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    found.sort();
    found
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deployer_path() -> PathBuf {
    repository().join("infra/deployer.json")
}

/// The `${Name}` placeholders of a definition's text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let end = rest.find('}').expect("a closed placeholder");
        names.insert(rest[..end].to_owned());
        rest = &rest[end + 1..];
    }
    names
}

/// The step a placeholder names: `PublishVersionFunctionArn` -> `PublishVersion`.
fn step_of(placeholder: &str) -> Option<&'static str> {
    let step = placeholder.strip_suffix("FunctionArn")?;
    steps::NAMES.iter().copied().find(|name| *name == step)
}

fn parameters() -> Value {
    json!({
        "HandlerCodePrefix": {
            "Type": "String",
            "Description": "Key prefix in the artifact bucket of the step handler zips, <prefix>/<binary>.zip (scripts/package-lambdas.sh builds them); a new prefix per release makes CloudFormation update the code",
            "AllowedPattern": "[A-Za-z0-9._/-]+"
        },
        "ServiceNamePattern": {
            "Type": "String",
            "Description": "Which services the deployer may manage, as an IAM name pattern matched against function, stack, role and log group names (`<service>-...`), e.g. shop-* or team-a-*; * for any",
            "Default": "*",
            "AllowedPattern": "[A-Za-z0-9*?-]+"
        },
        "StackResourcePolicyArn": {
            "Type": "String",
            "Description": "Optional managed policy for the resources manifests declare under resources: and stage_resources: (CloudFormation creates them with the stack steps' permissions); empty for none",
            "Default": ""
        },
        "CleanupSchedule": {
            "Type": "String",
            "Description": "When the cleanup machine runs: an EventBridge rate or cron expression",
            "Default": "rate(1 day)"
        },
        "CleanupManifestKey": {
            "Type": "String",
            "Description": "Artifact bucket key of the manifest (JSON) that scheduled cleanups read, e.g. shop/manifests/current.json; empty: the schedule stays disabled",
            "Default": ""
        },
        "GitHubRepository": {
            "Type": "String",
            "Description": "owner/name of the GitHub repository whose Actions may start executions through the CI role (OIDC); empty: no CI role",
            "Default": ""
        },
        "GitHubSubjectFilter": {
            "Type": "String",
            "Description": "Which workflow runs of that repository may assume the CI role: the OIDC subject after repo:<owner/name>:, e.g. pull_request or ref:refs/heads/main",
            "Default": "*"
        }
    })
}

fn conditions() -> Value {
    json!({
        "HasStackResourcePolicy": { "Fn::Not": [{ "Fn::Equals": [reference("StackResourcePolicyArn"), ""] }] },
        "HasCleanupManifest": { "Fn::Not": [{ "Fn::Equals": [reference("CleanupManifestKey"), ""] }] },
        "HasCiRepository": { "Fn::Not": [{ "Fn::Equals": [reference("GitHubRepository"), ""] }] }
    })
}

/// CloudFormation's calls for `AWS::Lambda::Function` (and the stage stacks' permissions).
const FUNCTION_ACTIONS: &[&str] = &[
    "lambda:CreateFunction",
    "lambda:DeleteFunction",
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:GetFunctionCodeSigningConfig",
    "lambda:GetFunctionRecursionConfig",
    "lambda:GetRuntimeManagementConfig",
    "lambda:PutRuntimeManagementConfig",
    "lambda:UpdateFunctionConfiguration",
    "lambda:UpdateFunctionCode",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:ListTags",
    "lambda:TagResource",
    "lambda:UntagResource",
    "lambda:GetPolicy",
    "lambda:AddPermission",
    "lambda:RemovePermission",
];
/// CloudFormation's calls for the service stack's `AWS::IAM::Role` (the functions' role).
const ROLE_ACTIONS: &[&str] = &[
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:GetRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:GetRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:ListRoleTags",
    "iam:TagRole",
    "iam:UntagRole",
];
/// CloudFormation's calls for `AWS::Logs::LogGroup`.
const LOG_GROUP_ACTIONS: &[&str] = &[
    "logs:CreateLogGroup",
    "logs:DeleteLogGroup",
    "logs:PutRetentionPolicy",
    "logs:DeleteRetentionPolicy",
    "logs:ListTagsForResource",
    "logs:TagResource",
    "logs:UntagResource",
];

/// What CloudFormation needs, with the stack steps' credentials, to create, update and delete
/// the resources aliasflow's own service and stage templates declare.
fn stack_resources_policy() -> Value {
    let functions = scope(&Scope::Functions);
    let roles = json!([sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${ServiceNamePattern}")]);
    let log_groups =
        json!([sub("arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:/aws/lambda/${ServiceNamePattern}")]);
    let mut pass = allow("PassFunctionRoles", &["iam:PassRole"], roles.clone());
    let named: Vec<&str> = [FUNCTION_ACTIONS, ROLE_ACTIONS, LOG_GROUP_ACTIONS, &["iam:PassRole"]].concat();
    pass["Condition"] = json!({ "StringEquals": { "iam:PassedToService": "lambda.amazonaws.com" } });
    json!({
        "Type": "AWS::IAM::ManagedPolicy",
        "Metadata": {
            "Comment": "CloudFormation acts with the caller's permissions, so the stack steps need these for the functions (placeholder code), execution role, log groups and REST API of aliasflow's templates. API Gateway ids are random, so REST APIs are scoped to the account's /restapis; logs:DescribeLogGroups is authorized on the account's log-group:* only. Resources a manifest declares itself need StackResourcePolicyArn."
        },
        "Properties": {
            "Description": "aliasflow: what stack operations on the managed services' stacks create, update and delete",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    allow("ServiceFunctions", FUNCTION_ACTIONS, functions),
                    allow("FunctionRoles", ROLE_ACTIONS, roles),
                    pass,
                    allow("LogGroups", LOG_GROUP_ACTIONS, log_groups),
                    allow("DescribeLogGroups", &["logs:DescribeLogGroups"],
                        json!([sub("arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:*")])),
                    allow("RestApis", &[
                        "apigateway:GET",
                        "apigateway:POST",
                        "apigateway:PUT",
                        "apigateway:PATCH",
                        "apigateway:DELETE"
                    ], json!([
                        sub("arn:${AWS::Partition}:apigateway:*::/restapis"),
                        sub("arn:${AWS::Partition}:apigateway:*::/restapis/*"),
                        sub("arn:${AWS::Partition}:apigateway:*::/tags/*")
                    ])),
                    deny_on_deployer(&named)
                ]
            }
        }
    })
}

fn step_resources(step: &str, resources: &mut Map<String, Value>) {
    let snake = steps::binary(step);
    let log_group = format!("{step}LogGroup");
    let role = format!("{step}Role");
    resources.insert(
        log_group.clone(),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": { "LogGroupName": format!("/aws/lambda/{PREFIX}-{step}"), "RetentionInDays": 30 }
        }),
    );

    let mut statements =
        vec![allow("OwnLogs", &["logs:CreateLogStream", "logs:PutLogEvents"], json!([get_att(&log_group, "Arn")]))];
    statements.extend(grants(step).iter().map(|g| allow(g.sid, g.actions, scope(&g.on))));
    if crate::steps::lease::UNDER_STAGE_LOCK.contains(&step) {
        // `steps::run` renews the stage lease before these steps: a read, then a conditional put.
        statements.push(allow("StageLease", &["dynamodb:GetItem", "dynamodb:PutItem"], scope(&Scope::Table)));
    }
    // The default ServiceNamePattern `*` also matches the deployer's own functions and stack:
    // what a step may do to the services' resources it may not do to the deployer's.
    let managed: Vec<&str> = grants(step)
        .iter()
        .filter(|g| matches!(g.on, Scope::Functions | Scope::Stacks))
        .flat_map(|g| g.actions.iter().copied())
        .collect();
    if !managed.is_empty() {
        statements.push(deny_on_deployer(&managed));
    }
    let mut properties = json!({
        "Description": format!("aliasflow step {step}: only the AWS calls it makes"),
        "AssumeRolePolicyDocument": assume_role(
            json!({ "Service": "lambda.amazonaws.com" }),
            // No aws:SourceAccount here: Lambda's own assumption of an execution role is not a
            // cross-service call that carries it. Step Functions and EventBridge do.
            None
        ),
        "Policies": [policy(&snake, statements)]
    });
    if STACK_STEPS.contains(&step) {
        properties["ManagedPolicyArns"] = json!([
            reference("StackResourcesPolicy"),
            { "Fn::If": ["HasStackResourcePolicy", reference("StackResourcePolicyArn"), reference("AWS::NoValue")] }
        ]);
    }
    resources.insert(role.clone(), json!({ "Type": "AWS::IAM::Role", "Properties": properties }));

    let timeout = if LONG_STEPS.contains(&step) { 900 } else { 300 };
    resources.insert(
        format!("{step}Function"),
        json!({
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": format!("{PREFIX}-{step}"),
                "Description": format!("aliasflow step {step} (functions/src/steps/{snake}.rs)"),
                "Runtime": "provided.al2023",
                "Architectures": ["arm64"],
                "Handler": "bootstrap",
                "Code": {
                    "S3Bucket": reference("ArtifactBucket"),
                    "S3Key": sub(&format!("${{HandlerCodePrefix}}/{snake}.zip"))
                },
                "Role": get_att(&role, "Arn"),
                "MemorySize": 256,
                "Timeout": timeout,
                "LoggingConfig": {
                    "LogFormat": "JSON",
                    "LogGroup": reference(&log_group),
                    "ApplicationLogLevel": "INFO",
                    "SystemLogLevel": "WARN"
                },
                "Environment": {
                    "Variables": {
                        TABLE_VAR: reference("HistoryTable"),
                        BUCKET_VAR: reference("ArtifactBucket")
                    }
                }
            }
        }),
    );
}

fn state_machine(operation: &str, text: &str) -> Value {
    let definition: Value = serde_json::from_str(text).unwrap();
    let mut substitutions = Map::new();
    for placeholder in placeholders(text) {
        let step = step_of(&placeholder).unwrap_or_else(|| {
            panic!("statemachines/{operation}.asl.json: ${{{placeholder}}} names no step of steps::NAMES")
        });
        substitutions.insert(placeholder, get_att(&format!("{step}Function"), "Arn"));
    }
    json!({
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": format!("{PREFIX}-{operation}"),
            "StateMachineType": "STANDARD",
            "RoleArn": get_att("StateMachineRole", "Arn"),
            "DefinitionString": serde_json::to_string(&definition).unwrap(),
            "DefinitionSubstitutions": substitutions
        }
    })
}

fn machine_id(operation: &str) -> String {
    format!("{}StateMachine", pascal_case(operation))
}

/// The whole template; `current` gives the resources and outputs kept as they are.
fn generate(current: &Value) -> Value {
    let definitions = definitions();
    let mut resources = Map::new();
    for name in LOCAL_RESOURCES {
        resources.insert(name.to_owned(), current["Resources"][name].clone());
    }
    resources.insert("StackResourcesPolicy".to_owned(), stack_resources_policy());
    for step in steps::NAMES {
        step_resources(step, &mut resources);
    }

    let functions: Vec<Value> = steps::NAMES.iter().map(|s| get_att(&format!("{s}Function"), "Arn")).collect();
    resources.insert(
        "StateMachineRole".to_owned(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "aliasflow state machines: invoke the step functions, nothing else",
                "AssumeRolePolicyDocument": assume_role(
                    json!({ "Service": "states.amazonaws.com" }),
                    Some(json!({ "StringEquals": { "aws:SourceAccount": reference("AWS::AccountId") } }))
                ),
                "Policies": [policy("invoke-steps", vec![allow("InvokeSteps", &["lambda:InvokeFunction"], Value::Array(functions))])]
            }
        }),
    );
    for (operation, text) in &definitions {
        resources.insert(machine_id(operation), state_machine(operation, text));
    }

    let cleanup = machine_id("cleanup");
    assert!(definitions.iter().any(|(o, _)| o == "cleanup"), "statemachines/cleanup.asl.json is missing");
    resources.insert(
        "CleanupScheduleRole".to_owned(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "aliasflow cleanup schedule: start the cleanup machine",
                "AssumeRolePolicyDocument": assume_role(
                    json!({ "Service": "events.amazonaws.com" }),
                    Some(json!({ "StringEquals": { "aws:SourceAccount": reference("AWS::AccountId") } }))
                ),
                "Policies": [policy("start-cleanup", vec![allow("StartCleanup", &["states:StartExecution"], json!([reference(&cleanup)]))])]
            }
        }),
    );
    resources.insert(
        "CleanupScheduleRule".to_owned(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "aliasflow: starts the cleanup machine (expired stages, stale locks, unreferenced versions and artifacts)",
                "ScheduleExpression": reference("CleanupSchedule"),
                "State": { "Fn::If": ["HasCleanupManifest", "ENABLED", "DISABLED"] },
                "Targets": [{
                    "Id": "cleanup",
                    "Arn": reference(&cleanup),
                    "RoleArn": get_att("CleanupScheduleRole", "Arn"),
                    "Input": sub("{\"manifest_key\": \"${CleanupManifestKey}\"}")
                }]
            }
        }),
    );

    let machines: Vec<Value> = definitions.iter().map(|(o, _)| reference(&machine_id(o))).collect();
    let executions: Vec<Value> = definitions
        .iter()
        .map(|(o, _)| {
            sub(&format!(
                "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{PREFIX}-{o}:*"
            ))
        })
        .collect();
    resources.insert(
        "CiRole".to_owned(),
        json!({
            "Type": "AWS::IAM::Role",
            "Condition": "HasCiRepository",
            "Metadata": {
                "Comment": "GitHub Actions through the account's OIDC provider for token.actions.githubusercontent.com (create it once per account). `aliasflow <command> --engine aws` uploads the artifacts and the manifest, records the artifacts in the history table, starts the execution and follows it to its end (DescribeExecution, GetExecutionHistory on these machines' executions only)."
            },
            "Properties": {
                "Description": "aliasflow CI: upload artifacts, start and follow the deployer's executions",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": {
                            "Federated": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/token.actions.githubusercontent.com")
                        },
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": { "token.actions.githubusercontent.com:aud": "sts.amazonaws.com" },
                            "StringLike": {
                                "token.actions.githubusercontent.com:sub": sub("repo:${GitHubRepository}:${GitHubSubjectFilter}")
                            }
                        }
                    }]
                },
                "Policies": [policy("start-executions", vec![
                    allow("StartExecutions", &["states:StartExecution"], Value::Array(machines)),
                    allow("FollowExecutions", &["states:DescribeExecution", "states:GetExecutionHistory"], Value::Array(executions)),
                    allow("UploadArtifactsAndManifests", &["s3:PutObject"], scope(&Scope::Objects(&["*/artifacts/*", "*/manifests/*"]))),
                    allow("DeployerAndArtifactRecords", &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"], scope(&Scope::Table))
                ])]
            }
        }),
    );

    let mut outputs = Map::new();
    for name in [TABLE_OUTPUT, BUCKET_OUTPUT] {
        outputs.insert(name.to_owned(), current["Outputs"][name].clone());
    }
    for (operation, _) in &definitions {
        let id = machine_id(operation);
        outputs.insert(
            format!("{id}Arn"),
            json!({ "Description": format!("Start `{operation}` executions here"), "Value": reference(&id) }),
        );
    }
    outputs.insert(
        "CiRoleArn".to_owned(),
        json!({ "Condition": "HasCiRepository", "Description": "role-to-assume of the CI workflow", "Value": get_att("CiRole", "Arn") }),
    );

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "aliasflow deployer: history table, artifact bucket, one Lambda function and role per step, one state machine per operation, the cleanup schedule and the CI role. Generated by functions/src/infra.rs: `ALIASFLOW_WRITE_INFRA=1 cargo test -p functions --lib infra`; bootstrap --engine local installs only the table, the bucket and its policy",
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources,
        "Outputs": outputs
    })
}

fn current() -> Value {
    serde_json::from_str(&std::fs::read_to_string(deployer_path()).unwrap()).unwrap()
}

#[test]
fn the_deployer_template_is_generated_from_the_steps_and_the_definitions() {
    let current = current();
    let wanted = generate(&current);
    if std::env::var_os("ALIASFLOW_WRITE_INFRA").is_some() {
        std::fs::write(deployer_path(), serde_json::to_string_pretty(&wanted).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        current == wanted,
        "infra/deployer.json is out of date with steps::NAMES, statemachines/*.asl.json or functions/src/infra.rs; \
         regenerate it with `ALIASFLOW_WRITE_INFRA=1 cargo test -p functions --lib infra`"
    );
}

#[test]
fn every_step_has_a_function_with_its_code_and_a_role_of_its_own() {
    let template = current();
    let resources = template["Resources"].as_object().unwrap();
    for step in steps::NAMES {
        let function = &resources[&format!("{step}Function")];
        assert_eq!(function["Type"], "AWS::Lambda::Function", "{step}");
        let key = function["Properties"]["Code"]["S3Key"]["Fn::Sub"].as_str().unwrap();
        assert!(key.ends_with(&format!("/{}.zip", steps::binary(step))), "{step}: {key}");
        assert_eq!(function["Properties"]["Role"], get_att(&format!("{step}Role"), "Arn"));
        assert_eq!(function["Properties"]["LoggingConfig"]["LogFormat"], "JSON");
        assert_eq!(resources[&format!("{step}Role")]["Type"], "AWS::IAM::Role", "{step}");
    }
    let functions = resources.keys().filter(|k| k.ends_with("Function")).count();
    assert_eq!(functions, steps::NAMES.len(), "a function in infra/deployer.json serves no step");
}

#[test]
fn every_definition_is_a_state_machine_with_every_task_bound_to_its_function() {
    let template = current();
    for (operation, text) in definitions() {
        let machine = &template["Resources"][machine_id(&operation)];
        assert_eq!(machine["Type"], "AWS::StepFunctions::StateMachine", "{operation}");
        let inlined: Value = serde_json::from_str(machine["Properties"]["DefinitionString"].as_str().unwrap()).unwrap();
        let on_disk: Value = serde_json::from_str(&text).unwrap();
        assert!(inlined == on_disk, "{operation}: DefinitionString is not statemachines/{operation}.asl.json");
        let bound = machine["Properties"]["DefinitionSubstitutions"].as_object().unwrap();
        let used = placeholders(&text);
        assert_eq!(bound.keys().cloned().collect::<BTreeSet<_>>(), used, "{operation}");
        for (placeholder, value) in bound {
            let step = step_of(placeholder).unwrap_or_else(|| panic!("{operation}: {placeholder} names no step"));
            assert_eq!(*value, get_att(&format!("{step}Function"), "Arn"), "{operation}: {placeholder}");
        }
        let output = &template["Outputs"][format!("{}Arn", machine_id(&operation))];
        assert_eq!(output["Value"], reference(&machine_id(&operation)), "{operation}: no output for the CLI");
    }
}

#[test]
fn the_local_bootstrap_still_finds_its_resources_and_outputs() {
    let text = std::fs::read_to_string(deployer_path()).unwrap();
    let local: Value = serde_json::from_str(&crate::deployer::local_template(&text).unwrap()).unwrap();
    let names: Vec<&String> = local["Resources"].as_object().unwrap().keys().collect();
    assert_eq!(names, LOCAL_RESOURCES);
    assert!(local.get("Parameters").is_none(), "the local subset needs no parameter");
}

/// Every IAM policy statement in a template: `Statement` entries anywhere under it.
fn statements(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(list)) = map.get("Statement") {
                found.extend(list.iter().cloned());
            }
            map.values().for_each(|v| statements(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| statements(v, found)),
        _ => {}
    }
}

#[test]
fn no_iam_allow_statement_under_infra_has_a_wildcard_action_or_resource() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repository().join("infra")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        assert!(
            !(name.ends_with(".yaml") || name.ends_with(".yml")),
            "{name}: this check reads JSON templates only; teach it YAML"
        );
        if !name.ends_with(".json") {
            continue;
        }
        let template: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut found = Vec::new();
        statements(&template, &mut found);
        for statement in found.iter().filter(|s| s["Effect"] == "Allow") {
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "{name}: {statement}"
            );
            let actions = match &statement["Action"] {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().map(|a| a.as_str().unwrap()).collect(),
                other => panic!("{name}: Action {other}"),
            };
            for action in actions {
                assert!(action != "*" && !action.ends_with(":*"), "{name}: wildcard action {action} in {statement}");
            }
            let resources = match &statement["Resource"] {
                Value::Array(many) => many.clone(),
                Value::Null => Vec::new(), // trust policies name a Principal instead
                one => vec![one.clone()],
            };
            assert!(!resources.contains(&json!("*")), "{name}: Resource * in {statement}");
            checked += 1;
        }
    }
    assert!(checked > steps::NAMES.len(), "the check found the deployer's roles");
}
