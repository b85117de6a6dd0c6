//! What AWS refuses and moto accepts (DESIGN.md "Local AWS"), refused here before the request
//! leaves the SDK, so a test fails where AWS would: CloudFormation template bodies over 51,200
//! bytes and template URLs in another region than the stack. Every account of the tests has it.

use aws_sdk_cloudformation::operation::create_stack::CreateStackInput;
use aws_sdk_cloudformation::operation::update_stack::UpdateStackInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// CloudFormation's limit on an inline `TemplateBody`.
pub const MAX_TEMPLATE_BODY: usize = 51_200;

/// Refuses the requests AWS would refuse (see the module).
#[derive(Debug)]
pub struct AwsLimits;

impl AwsLimits {
    /// The request's template body and URL, if it is a stack creation or update.
    fn template(context: &BeforeSerializationInterceptorContextRef<'_>) -> Option<(Option<String>, Option<String>)> {
        let input = context.input();
        if let Some(create) = input.downcast_ref::<CreateStackInput>() {
            return Some((create.template_body.clone(), create.template_url.clone()));
        }
        input
            .downcast_ref::<UpdateStackInput>()
            .map(|update| (update.template_body.clone(), update.template_url.clone()))
    }
}

impl Intercept for AwsLimits {
    fn name(&self) -> &'static str {
        "AwsLimits"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some((body, url)) = Self::template(context) else { return Ok(()) };
        if let Some(body) = body.filter(|b| b.len() > MAX_TEMPLATE_BODY) {
            return Err(format!(
                "ValidationError (strict test layer, as AWS): TemplateBody is {} bytes; CloudFormation takes at most {MAX_TEMPLATE_BODY} inline, larger templates go by TemplateURL",
                body.len()
            )
            .into());
        }
        let region = cfg.load::<aws_types::region::Region>().map(ToString::to_string);
        if let (Some(url), Some(region)) = (url, region) {
            if !url.contains(&format!(".s3.{region}.amazonaws.com/")) {
                return Err(format!(
                    "ValidationError (strict test layer, as AWS): TemplateURL {url} is not an S3 object in the stack's region {region}"
                )
                .into());
            }
        }
        Ok(())
    }
}
