"""Responses: template and fine-tuned language-model generation of what the assistant says."""

# The fine-tuned generator, its training, the guard and the SGD / T2G2 data (lazy: no torch on import).
from .._lazy import lazy_attributes as _lazy_attributes

_LM_EXPORTS = {
    "DialogueAct": ".acts", "GenerationInput": ".acts", "InputFormat": ".acts", "ResponseExample": ".acts",
    "DecodingOptions": ".generator", "LMResponseGenerator": ".generator", "bundled_smollm2_path": ".generator",
    "ResponseTrainingOptions": ".options", "train_responses": ".training",
    "GuardedResponses": ".guard", "check_response": ".guard", "guard_responses": ".guard",
    "T2G2Templates": ".sgd", "load_sgd_split": ".sgd", "domain_examples": ".domain", "with_apologies": ".styles",
}
__getattr__, __dir__ = _lazy_attributes(__name__, _LM_EXPORTS, globals())
