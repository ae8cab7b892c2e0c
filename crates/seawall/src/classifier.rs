//! Which classifier a layer decides with.

use std::error::Error;

use seawall_core::{BuiltinClassifier, Classification, Classifier, Classify, RequestContext};

/// The verdict on `error` by the layer's own classifier if it was given one, else by the
/// stack's (carried in the request context), else by the built-in table.
pub(crate) fn classify(
    own: Option<&Classifier>,
    stack: Option<&Classifier>,
    error: &(dyn Error + 'static),
) -> Classification {
    match own.or(stack) {
        Some(classifier) => classifier.classify(error),
        None => BuiltinClassifier::default().classify(error),
    }
}

/// The stack's classifier carried in a request's context.
pub(crate) fn of_context(context: Option<&RequestContext>) -> Option<&Classifier> {
    context.and_then(|context| context.classifier.as_ref())
}

/// Hands a layer's own classifier, if it was given one, to the layers inside it: the
/// nearest layer given a classifier decides for everything it wraps.
pub(crate) fn install(own: Option<&Classifier>, context: &mut RequestContext) {
    if let Some(classifier) = own
        && context.classifier.as_ref() != Some(classifier)
    {
        context.classifier = Some(classifier.clone());
    }
}
