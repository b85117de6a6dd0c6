//! A stage stack, `<service>-<stage>` in the stage's region: the user's `stage_resources` and
//! `stage_outputs`, instance-per-stage functions, per-stage log groups, and the stage of the
//! REST API.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::service::api_resources;
use super::{
    document, function, log_group, output, parameter, referenced_names, render, API_URL, ARTIFACT_BUCKET,
    FUNCTION_ROLE_ARN, PLACEHOLDER_KEY, REST_API_ID, STAGE,
};
use crate::domain::manifest::{LogsMode, Manifest};
use crate::domain::naming;

/// The stage stack's template for `stage`. It declares only the parameters it uses: `Stage`
/// and service outputs when the user's stage sections refer to them, `FunctionRoleArn`,
/// `ArtifactBucket` and `PlaceholderKey` for instance-per-stage functions, `RestApiId` for the
/// API stage. Expects a manifest that passed [`Manifest::check_stage`] for `stage`.
///
/// ```
/// use functions::domain::{manifest::Manifest, template::{parameter_names, stage_template}};
/// let text = "service: shop\nregion: us-east-1\n\
///             functions: { thumb: { code: t.zip, instance_per_stage: true } }\n";
/// let template = stage_template(&Manifest::parse(text, "aliasflow.yaml")?, "dev");
/// let thumb = &template["Resources"]["ThumbFunction"];
/// assert_eq!(thumb["Properties"]["FunctionName"], "shop-dev-thumb");
/// assert_eq!(parameter_names(&template), ["ArtifactBucket", "PlaceholderKey", "FunctionRoleArn"]);
/// # Ok::<(), functions::domain::manifest::ManifestErrors>(())
/// ```
pub fn stage_template(m: &Manifest, stage: &str) -> Value {
    let settings = m.stage_settings(stage);
    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut used = BTreeSet::new();

    for (id, resource) in &m.stage_resources {
        referenced_names(resource, &mut used);
        resources.insert(id.clone(), resource.clone());
    }

    let instances: Vec<&String> = m.functions.keys().filter(|f| m.is_instance_per_stage(f, stage)).collect();
    let role = match &m.role {
        Some(arn) => Value::String(arn.clone()),
        None => json!({ "Ref": FUNCTION_ROLE_ARN }),
    };
    for name in &instances {
        let id = naming::logical_id(name);
        let physical = naming::function_name_unchecked(&m.service, Some(stage), name);
        let log_group_id = format!("{id}LogGroup");
        resources.insert(log_group_id.clone(), log_group(&naming::default_log_group_name(&physical)));
        let owner = naming::Owner::stage(&m.service, stage);
        resources.insert(format!("{id}Function"), function(m, name, &physical, &role, Some(&log_group_id), &owner));
    }
    if !instances.is_empty() {
        referenced_names(&role, &mut used);
    }

    if m.logs == LogsMode::Stage {
        for name in m.functions.keys().filter(|f| !m.is_instance_per_stage(f, stage)) {
            let id = naming::logical_id(name);
            resources
                .insert(format!("{id}LogGroup"), log_group(&naming::log_group_name(&m.service, Some(stage), name)));
            outputs.insert(
                format!("{id}LogGroupName"),
                output(&format!("The log group of {name} in this stage."), &json!({ "Ref": format!("{id}LogGroup") })),
            );
        }
    }

    // The REST API lives in the home region: a stage stack elsewhere cannot hold a stage of it.
    if let Some(api) = m.api.as_ref().filter(|_| !settings.remote) {
        // A Deployment is a snapshot taken when it is created, so a changed API needs a new one:
        // its logical id carries a hash of the API's resources, as SAM does.
        let hash = hex::encode(Sha256::digest(render(&Value::Object(api_resources(m, api))).as_bytes()));
        let deployment = format!("ApiDeployment{}", &hash[..10]);
        resources.insert(
            deployment.clone(),
            json!({
                "Type": "AWS::ApiGateway::Deployment",
                "Properties": {
                    "RestApiId": { "Ref": REST_API_ID },
                    "Description": format!("aliasflow routes {}", &hash[..16])
                }
            }),
        );
        resources.insert(
            "ApiStage".to_owned(),
            json!({
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {
                    "RestApiId": { "Ref": REST_API_ID },
                    "DeploymentId": { "Ref": deployment },
                    "StageName": stage,
                    "Description": format!("Integrations call the functions' alias {stage}"),
                    "Variables": { "alias": stage }
                }
            }),
        );
        outputs.insert(
            API_URL.to_owned(),
            output(
                "The stage's invoke URL.",
                &json!({
                    "Fn::Sub": "https://${RestApiId}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${ApiStage}"
                }),
            ),
        );
        used.insert(REST_API_ID.to_owned());
    }

    for (name, value) in &m.stage_outputs {
        referenced_names(value, &mut used);
        outputs.insert(name.clone(), value.clone());
    }

    let mut parameters = Map::new();
    if used.contains(STAGE) {
        parameters.insert(STAGE.to_owned(), parameter("The stage name, also the functions' alias name."));
    }
    if !instances.is_empty() {
        parameters.insert(ARTIFACT_BUCKET.to_owned(), parameter("The bucket of aliasflow's code artifacts."));
        parameters.insert(PLACEHOLDER_KEY.to_owned(), parameter("The placeholder zip that new functions start with."));
    }
    if used.contains(FUNCTION_ROLE_ARN) {
        parameters.insert(FUNCTION_ROLE_ARN.to_owned(), parameter("Service output: the functions' execution role."));
    }
    if used.contains(REST_API_ID) {
        parameters.insert(REST_API_ID.to_owned(), parameter("Service output: the REST API."));
    }
    for name in m.outputs.keys().filter(|name| used.contains(*name)) {
        parameters.insert(name.clone(), parameter(&format!("Service output {name}.")));
    }

    let region = if settings.remote { format!(", remote in {}", settings.region) } else { String::new() };
    document(format!("aliasflow stage stack of {}, stage {stage}{region}", m.service), parameters, resources, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::parameter_names;

    fn example() -> Manifest {
        Manifest::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/aliasflow.yaml"))
            .unwrap()
    }

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text, "aliasflow.yaml").unwrap()
    }

    #[test]
    fn a_stage_template_of_the_example_has_the_expected_parameters() {
        let template = stage_template(&example(), "dev");
        assert_eq!(
            parameter_names(&template),
            ["Stage", "ArtifactBucket", "PlaceholderKey", "FunctionRoleArn", "RestApiId", "AssetsBucket"]
        );
    }

    #[test]
    fn stage_templates_are_byte_identical_across_two_renders() {
        for stage in ["dev", "prod", "pr-7"] {
            assert_eq!(
                render(&stage_template(&example(), stage)),
                render(&stage_template(&example(), stage)),
                "{stage}"
            );
        }
    }

    #[test]
    fn instance_per_stage_functions_are_named_after_the_stage_with_their_own_log_group() {
        let template = stage_template(&example(), "pr-7");
        let resources = &template["Resources"];
        assert_eq!(resources["ThumbnailerFunction"]["Properties"]["FunctionName"], "shop-pr-7-thumbnailer");
        assert_eq!(resources["ThumbnailerFunction"]["Properties"]["Role"], json!({ "Ref": "FunctionRoleArn" }));
        assert_eq!(resources["ThumbnailerLogGroup"]["Properties"]["LogGroupName"], "/aws/lambda/shop-pr-7-thumbnailer");
        assert!(resources.get("ApiFunction").is_none(), "shared: in the service stack");
    }

    #[test]
    fn the_api_stage_points_the_alias_variable_at_the_stage() {
        let template = stage_template(&example(), "prod");
        let stage = &template["Resources"]["ApiStage"]["Properties"];
        assert_eq!(stage["StageName"], "prod");
        assert_eq!(stage["Variables"], json!({ "alias": "prod" }));
        let deployment = stage["DeploymentId"]["Ref"].as_str().unwrap();
        assert!(deployment.starts_with("ApiDeployment") && template["Resources"].get(deployment).is_some());
        assert!(template["Outputs"].get("ApiUrl").is_some());
    }

    #[test]
    fn a_route_change_makes_a_new_deployment() {
        let base = "\
service: shop
region: us-east-1
functions: { api: { code: a } }
api:
  routes:
    GET /orders: api
";
        let deployment = |text: &str| {
            stage_template(&manifest(text), "dev")["Resources"]["ApiStage"]["Properties"]["DeploymentId"].clone()
        };
        assert_eq!(deployment(base), deployment(base));
        assert_ne!(deployment(base), deployment(&format!("{base}    POST /orders: api\n")));
    }

    #[test]
    fn per_stage_logs_give_each_shared_function_a_log_group_and_an_output() {
        let m = manifest("service: shop\nregion: us-east-1\nlogs: stage\nfunctions: { api: { code: a } }\n");
        let template = stage_template(&m, "dev");
        assert_eq!(template["Resources"]["ApiLogGroup"]["Properties"]["LogGroupName"], "/aws/lambda/shop/dev/api");
        assert_eq!(template["Outputs"]["ApiLogGroupName"]["Value"], json!({ "Ref": "ApiLogGroup" }));
        assert!(template.get("Parameters").is_none(), "no parameter is used");
    }

    #[test]
    fn a_remote_stage_holds_every_function_and_no_api_stage() {
        let mut m = example();
        m.stages.insert(
            "eu".into(),
            crate::domain::manifest::StageSettings { region: Some("eu-west-1".into()), ..Default::default() },
        );
        let template = stage_template(&m, "eu");
        let resources = template["Resources"].as_object().unwrap();
        for id in ["ApiFunction", "WorkerFunction", "ThumbnailerFunction"] {
            assert!(resources.contains_key(id), "{id}");
        }
        assert!(!resources.contains_key("ApiStage"));
        assert_eq!(resources["ApiFunction"]["Properties"]["FunctionName"], "shop-eu-api");
    }

    #[test]
    fn a_stage_with_nothing_of_its_own_still_has_a_resource() {
        let template =
            stage_template(&manifest("service: shop\nregion: us-east-1\nfunctions: { api: { code: a } }\n"), "dev");
        assert_eq!(template["Resources"].as_object().map(Map::len), Some(1));
    }
}
