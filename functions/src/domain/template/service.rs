//! The service stack, `<service>` in the home region: function definitions, the execution role,
//! service-wide log groups, the user's `resources` and `outputs`, and the REST API skeleton.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    document, function, log_group, output, parameter, ARTIFACT_BUCKET, FUNCTION_ROLE_ARN, PLACEHOLDER_KEY, REST_API_ID,
    REST_API_ROOT_RESOURCE_ID,
};
use crate::domain::history::SharedFunction;
use crate::domain::manifest::{split_route, ApiSpec, LogsMode, Manifest};
use crate::domain::naming;

/// The service stack's template: the manifest's shared functions and resources, plus the `kept`
/// definitions of shared functions the manifest dropped that live stages still use (see
/// [`kept_functions`]). `aliasflow render` passes none: it shows the manifest alone.
///
/// ```
/// use std::collections::BTreeMap;
/// use functions::domain::{manifest::Manifest, template::service_template};
/// let text = "service: shop\nregion: us-east-1\nfunctions: { api: { code: api.zip } }\n";
/// let template = service_template(&Manifest::parse(text, "aliasflow.yaml")?, &BTreeMap::new());
/// let resources = &template["Resources"];
/// assert_eq!(resources["ApiFunction"]["Properties"]["FunctionName"], "shop-api");
/// assert_eq!(resources["ApiLogGroup"]["Properties"]["LogGroupName"], "/aws/lambda/shop-api");
/// # Ok::<(), functions::domain::manifest::ManifestErrors>(())
/// ```
pub fn service_template(m: &Manifest, kept: &BTreeMap<String, SharedFunction>) -> Value {
    let mut parameters = Map::new();
    let mut resources = Map::new();
    let mut outputs = Map::new();

    let role = match &m.role {
        Some(arn) => Value::String(arn.clone()),
        None => {
            resources.insert("FunctionRole".to_owned(), role(&m.service));
            json!({ "Fn::GetAtt": ["FunctionRole", "Arn"] })
        }
    };
    let mut definitions = shared_functions(m);
    for (name, definition) in kept {
        definitions.entry(name.clone()).or_insert_with(|| definition.clone());
    }
    if !definitions.is_empty() {
        parameters.insert(ARTIFACT_BUCKET.to_owned(), parameter("The bucket of aliasflow's code artifacts."));
        parameters.insert(PLACEHOLDER_KEY.to_owned(), parameter("The placeholder zip that new functions start with."));
    }
    for (name, definition) in &definitions {
        let id = naming::logical_id(name);
        let log_group_id = definition.service_log_group.then(|| format!("{id}LogGroup"));
        if let Some(log_group_id) = &log_group_id {
            resources.insert(log_group_id.clone(), log_group(&naming::log_group_name(&m.service, None, name)));
        }
        let mut resource = function(
            m,
            name,
            &definition.function_name,
            &role,
            log_group_id.as_deref(),
            &naming::Owner::service(&m.service),
        );
        // A kept function is no longer (shared) in the manifest: its definition is the recorded one.
        let properties = &mut resource["Properties"];
        properties["Runtime"] = json!(definition.runtime);
        properties["Architectures"] = json!([definition.architecture]);
        properties["Handler"] = json!(definition.handler);
        resources.insert(format!("{id}Function"), resource);
    }
    resources.extend(m.resources.iter().map(|(id, resource)| (id.clone(), resource.clone())));

    if let Some(api) = &m.api {
        resources.extend(api_resources(m, api));
        outputs.insert(
            REST_API_ID.to_owned(),
            output("The REST API; each stage stack deploys a stage of it.", &json!({ "Ref": "RestApi" })),
        );
        outputs.insert(
            REST_API_ROOT_RESOURCE_ID.to_owned(),
            output("The REST API's root resource.", &json!({ "Fn::GetAtt": ["RestApi", "RootResourceId"] })),
        );
    }
    outputs.insert(FUNCTION_ROLE_ARN.to_owned(), output("The functions' execution role.", &role));
    outputs.extend(m.outputs.iter().map(|(name, value)| (name.clone(), value.clone())));

    document(
        format!("aliasflow service stack of {}: function definitions and service resources", m.service),
        parameters,
        resources,
        outputs,
    )
}

/// The manifest's shared functions (not instances per stage), as the service stack defines them.
pub fn shared_functions(m: &Manifest) -> BTreeMap<String, SharedFunction> {
    m.functions
        .iter()
        .filter(|(_, spec)| !spec.instance_per_stage)
        .map(|(name, spec)| {
            let definition = SharedFunction {
                function_name: naming::function_name_unchecked(&m.service, None, name),
                runtime: m.function_runtime(name).to_owned(),
                architecture: m.function_architecture(name).as_str().to_owned(),
                handler: spec.handler.clone(),
                service_log_group: m.logs == LogsMode::Service,
            };
            (name.clone(), definition)
        })
        .collect()
}

/// The shared functions the service stack defines (`recorded`) that the manifest no longer
/// defines as shared (dropped, or now an instance per stage).
pub fn dropped_functions(
    recorded: &BTreeMap<String, SharedFunction>,
    m: &Manifest,
) -> BTreeMap<String, SharedFunction> {
    let shared = shared_functions(m);
    recorded.iter().filter(|(name, _)| !shared.contains_key(*name)).map(|(n, d)| (n.clone(), d.clone())).collect()
}

/// Which `dropped` functions stay in the service stack: those a stage still uses, where `users`
/// maps a physical function name to the stages whose active or retained deployments reference
/// it. Manifest key to the definition and those stages, in name order.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use functions::domain::history::SharedFunction;
/// use functions::domain::template::kept_functions;
/// let definition = |name: &str| SharedFunction {
///     function_name: name.into(), runtime: "provided.al2023".into(), architecture: "arm64".into(),
///     handler: "bootstrap".into(), service_log_group: false,
/// };
/// let dropped = BTreeMap::from([("worker".to_owned(), definition("shop-worker")), ("old".to_owned(), definition("shop-old"))]);
/// let users = BTreeMap::from([("shop-worker".to_owned(), BTreeSet::from(["prod".to_owned()]))]);
/// let kept = kept_functions(&dropped, &users);
/// assert_eq!(kept.keys().collect::<Vec<_>>(), ["worker"]);
/// assert_eq!(kept["worker"].1, ["prod"]);
/// ```
pub fn kept_functions(
    dropped: &BTreeMap<String, SharedFunction>,
    users: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, (SharedFunction, Vec<String>)> {
    dropped
        .iter()
        .filter_map(|(name, definition)| {
            let stages = users.get(&definition.function_name).filter(|stages| !stages.is_empty())?;
            Some((name.clone(), (definition.clone(), stages.iter().cloned().collect())))
        })
        .collect()
}

/// The execution role: Lambda may assume it, and it may write to this service's log groups
/// only (`/aws/lambda/<service>-*` and the per-stage `/aws/lambda/<service>/*`), in any region
/// since remote stages use it too.
fn role(service: &str) -> Value {
    let group = |pattern: String| {
        let arn = format!("arn:${{AWS::Partition}}:logs:*:${{AWS::AccountId}}:log-group:{pattern}");
        json!({ "Fn::Sub": arn })
    };
    let groups = [group(format!("/aws/lambda/{service}-*")), group(format!("/aws/lambda/{service}/*"))];
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": format!("Execution role of the functions of {service}, by aliasflow"),
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "lambda.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }]
            },
            "Policies": [{
                "PolicyName": "logs",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": groups
                    }]
                }
            }]
        }
    })
}

/// The REST API, one `AWS::ApiGateway::Resource` per path prefix and one `AWS::ApiGateway::Method`
/// per route. Integrations call the alias named by the stage variable `alias` (an instance per
/// stage: the function named after it), so one API serves every stage.
pub(super) fn api_resources(m: &Manifest, api: &ApiSpec) -> Map<String, Value> {
    let mut resources = Map::new();
    resources.insert(
        "RestApi".to_owned(),
        json!({ "Type": "AWS::ApiGateway::RestApi", "Properties": { "Name": m.service } }),
    );

    let routes: Vec<(&str, Vec<&str>, &String)> = api
        .routes
        .iter()
        .map(|(route, function)| {
            let (method, segments) = split_route(route);
            (method, segments, function)
        })
        .collect();
    let paths: BTreeSet<Vec<&str>> =
        routes.iter().flat_map(|(_, segments, _)| (1..=segments.len()).map(|n| segments[..n].to_vec())).collect();
    let resource_ids =
        unique_ids(paths.iter().map(|path| (path.join("/"), format!("Api{}Resource", pascal_path(path)))));
    for path in &paths {
        let parent = match path.split_last() {
            Some((_, parent)) if !parent.is_empty() => {
                json!({ "Ref": resource_ids[&parent.join("/")] })
            }
            _ => json!({ "Fn::GetAtt": ["RestApi", "RootResourceId"] }),
        };
        let last = path.last().copied().unwrap_or_default();
        resources.insert(
            resource_ids[&path.join("/")].clone(),
            json!({
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "RestApiId": { "Ref": "RestApi" },
                    "ParentId": parent,
                    "PathPart": last
                }
            }),
        );
    }

    let method_ids = unique_ids(routes.iter().map(|(method, segments, _)| {
        let id = format!("Api{}{}Method", naming::logical_id(&method.to_ascii_lowercase()), pascal_path(segments));
        (format!("{method} /{}", segments.join("/")), id)
    }));
    for (method, segments, function) in &routes {
        let resource = if segments.is_empty() {
            json!({ "Fn::GetAtt": ["RestApi", "RootResourceId"] })
        } else {
            json!({ "Ref": resource_ids[&segments.join("/")] })
        };
        let instance = m.functions.get(*function).is_some_and(|f| f.instance_per_stage);
        // `${!x}` is Fn::Sub's escape for a literal `${x}`: the stage variable API Gateway fills.
        let target = if instance {
            format!("{}-${{!stageVariables.alias}}-{function}", m.service)
        } else {
            format!("{}-{function}:${{!stageVariables.alias}}", m.service)
        };
        let uri = format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/\
             arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{target}/invocations"
        );
        resources.insert(
            method_ids[&format!("{method} /{}", segments.join("/"))].clone(),
            json!({
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "RestApiId": { "Ref": "RestApi" },
                    "ResourceId": resource,
                    "HttpMethod": method,
                    "AuthorizationType": "NONE",
                    "Integration": {
                        "Type": "AWS_PROXY",
                        "IntegrationHttpMethod": "POST",
                        "Uri": { "Fn::Sub": uri }
                    }
                }
            }),
        );
    }
    resources
}

/// `["orders", "{id}"]` -> `OrdersId`; the root path is `Root`.
fn pascal_path(segments: &[&str]) -> String {
    if segments.is_empty() {
        return "Root".to_owned();
    }
    segments.iter().map(|s| naming::logical_id(s)).collect()
}

/// Keys to logical ids; ids that two keys share (`/a-b` and `/ab/`...) get a hash of their key
/// appended, so every key keeps a distinct, stable id.
fn unique_ids(candidates: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let candidates: Vec<(String, String)> = candidates.collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, id) in &candidates {
        *count.entry(id.as_str()).or_default() += 1;
    }
    candidates
        .iter()
        .map(|(key, id)| {
            let id = if count[id.as_str()] > 1 {
                let hash = hex::encode(Sha256::digest(key.as_bytes()));
                format!("{id}{}", &hash[..8])
            } else {
                id.clone()
            };
            (key.clone(), id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::{parameter_names, render};

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text, "aliasflow.yaml").unwrap()
    }

    fn example() -> Manifest {
        Manifest::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/aliasflow.yaml"))
            .unwrap()
    }

    #[test]
    fn the_service_template_is_byte_identical_across_two_renders() {
        let first = render(&service_template(&example(), &BTreeMap::new()));
        let second = render(&service_template(&example(), &BTreeMap::new()));
        assert_eq!(first, second);
    }

    #[test]
    fn shared_functions_are_defined_with_placeholder_code_and_no_configuration() {
        let template = service_template(&example(), &BTreeMap::new());
        let api = &template["Resources"]["ApiFunction"]["Properties"];
        assert_eq!(api["FunctionName"], "shop-api");
        assert_eq!(
            api["Code"],
            json!({ "S3Bucket": { "Ref": "ArtifactBucket" }, "S3Key": { "Ref": "PlaceholderKey" } })
        );
        assert_eq!(api["Role"], json!({ "Fn::GetAtt": ["FunctionRole", "Arn"] }));
        assert_eq!(api["Architectures"], json!(["arm64"]));
        for configured in ["MemorySize", "Timeout", "Environment", "Description"] {
            assert!(api.get(configured).is_none(), "{configured} is set through the Lambda API");
        }
        assert!(template["Resources"].get("ThumbnailerFunction").is_none(), "instance per stage: in the stage stacks");
        assert_eq!(parameter_names(&template), ["ArtifactBucket", "PlaceholderKey"]);
    }

    fn users(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(function, stages)| ((*function).to_owned(), stages.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn only_the_dropped_functions_a_stage_still_uses_are_kept_with_those_stages() {
        let recorded = shared_functions(&example());
        let mut m = example();
        m.functions.remove("worker");
        m.functions.get_mut("api").unwrap().instance_per_stage = true;
        let dropped = dropped_functions(&recorded, &m);
        assert_eq!(dropped.keys().collect::<Vec<_>>(), ["api", "worker"], "dropped, and made per stage");

        let kept = kept_functions(&dropped, &users(&[("shop-worker", &["prod", "dev"]), ("shop-other", &["dev"])]));
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["worker"], "nobody uses shop-api any more");
        assert_eq!(kept["worker"], (recorded["worker"].clone(), vec!["dev".to_owned(), "prod".to_owned()]));
        assert!(kept_functions(&dropped, &users(&[("shop-worker", &[])])).is_empty());
        assert!(dropped_functions(&recorded, &example()).is_empty(), "the same manifest drops nothing");
    }

    #[test]
    fn a_kept_function_is_defined_as_recorded_with_its_service_log_group() {
        let mut recorded = shared_functions(&example());
        let mut m = example();
        m.functions.remove("worker");
        let worker = recorded.get_mut("worker").unwrap();
        worker.runtime = "nodejs20.x".into();
        worker.handler = "index.handler".into();
        let kept = BTreeMap::from([("worker".to_owned(), worker.clone())]);
        let template = service_template(&m, &kept);
        let properties = &template["Resources"]["WorkerFunction"]["Properties"];
        assert_eq!(properties["FunctionName"], "shop-worker");
        assert_eq!(
            (properties["Runtime"].as_str(), properties["Handler"].as_str()),
            (Some("nodejs20.x"), Some("index.handler"))
        );
        assert_eq!(properties["LoggingConfig"], json!({ "LogGroup": { "Ref": "WorkerLogGroup" } }));
        assert_eq!(template["Resources"]["WorkerLogGroup"]["Properties"]["LogGroupName"], "/aws/lambda/shop-worker");
        assert!(service_template(&m, &BTreeMap::new())["Resources"].get("WorkerFunction").is_none());
    }

    #[test]
    fn keeping_what_the_manifest_still_has_renders_the_same_bytes() {
        let kept = shared_functions(&example());
        assert_eq!(
            render(&service_template(&example(), &kept)),
            render(&service_template(&example(), &BTreeMap::new()))
        );
    }

    #[test]
    fn a_given_role_replaces_the_generated_one_and_is_still_an_output() {
        let arn = "arn:aws:iam::123456789012:role/shop-fns";
        let template = service_template(
            &manifest(&format!("service: shop\nregion: us-east-1\nrole: {arn}\nfunctions: {{ api: {{ code: a }} }}\n")),
            &BTreeMap::new(),
        );
        assert!(template["Resources"].get("FunctionRole").is_none());
        assert_eq!(template["Resources"]["ApiFunction"]["Properties"]["Role"], arn);
        assert_eq!(template["Outputs"]["FunctionRoleArn"]["Value"], arn);
    }

    #[test]
    fn per_stage_logs_leave_no_log_group_in_the_service_stack() {
        let template = service_template(
            &manifest("service: shop\nregion: us-east-1\nlogs: stage\nfunctions: { api: { code: a } }\n"),
            &BTreeMap::new(),
        );
        assert!(template["Resources"].get("ApiLogGroup").is_none());
        assert!(template["Resources"]["ApiFunction"]["Properties"].get("LoggingConfig").is_none());
    }

    #[test]
    fn the_role_may_write_only_to_this_services_log_groups() {
        let template = service_template(&example(), &BTreeMap::new());
        let statement =
            &template["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0];
        assert_eq!(statement["Action"], json!(["logs:CreateLogStream", "logs:PutLogEvents"]));
        let resources = render(&statement["Resource"]);
        assert!(
            resources.contains("log-group:/aws/lambda/shop-*") && resources.contains("log-group:/aws/lambda/shop/*"),
            "{resources}"
        );
    }

    #[test]
    fn routes_become_resources_per_path_part_and_methods_calling_the_stage_alias() {
        let m = manifest(
            "\
service: shop
region: us-east-1
functions:
  api: { code: a }
  thumb: { code: b, instance_per_stage: true }
api:
  routes:
    GET /orders/{id}: api
    POST /orders: api
    GET /: api
    PUT /thumbs: thumb
",
        );
        let resources = api_resources(&m, m.api.as_ref().unwrap());
        let ids: Vec<&String> = resources.keys().collect();
        assert_eq!(
            ids,
            [
                "RestApi",
                "ApiOrdersResource",
                "ApiOrdersIdResource",
                "ApiThumbsResource",
                "ApiGetRootMethod",
                "ApiGetOrdersIdMethod",
                "ApiPostOrdersMethod",
                "ApiPutThumbsMethod"
            ]
        );
        assert_eq!(resources["ApiOrdersIdResource"]["Properties"]["ParentId"], json!({ "Ref": "ApiOrdersResource" }));
        assert_eq!(resources["ApiOrdersIdResource"]["Properties"]["PathPart"], "{id}");
        let uri = resources["ApiGetOrdersIdMethod"]["Properties"]["Integration"]["Uri"]["Fn::Sub"].as_str().unwrap();
        assert!(uri.ends_with(":function:shop-api:${!stageVariables.alias}/invocations"), "{uri}");
        let uri = resources["ApiPutThumbsMethod"]["Properties"]["Integration"]["Uri"]["Fn::Sub"].as_str().unwrap();
        assert!(uri.ends_with(":function:shop-${!stageVariables.alias}-thumb/invocations"), "{uri}");
    }

    #[test]
    fn paths_whose_ids_would_collide_get_distinct_ids() {
        let m = manifest(
            "\
service: shop
region: us-east-1
functions: { api: { code: a } }
api:
  routes:
    GET /a-b: api
    GET /aB: api
",
        );
        let resources = api_resources(&m, m.api.as_ref().unwrap());
        let methods: Vec<&String> = resources.keys().filter(|id| id.contains("Method")).collect();
        assert_eq!(methods.len(), 2, "{methods:?}");
        assert!(
            methods.iter().all(|id| id.starts_with("ApiGetAB") && id.len() == "ApiGetABMethod".len() + 8),
            "{methods:?}"
        );
    }
}
