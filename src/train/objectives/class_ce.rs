//! Class cross-entropy: image features against class embeddings, CLIP's zero-shot
//! classifier trained as a classifier.
use crate::adapt::prompt::PromptLearner;
use crate::autograd::{Tape, Var};
use crate::backend::{Act, MatmulSpec};
use crate::clip::Clip;
use crate::error::Result;
use crate::tensor::Tensor;

/// CoOp: frozen image features `[B, P]` against the learned prompts' class embeddings
/// at the fixed logit `scale`.
pub fn prompt_loss(
    model: &Clip,
    tape: &Tape,
    prompt: &PromptLearner,
    features: &Tensor,
    labels: &Tensor,
    scale: f32,
) -> Result<Var> {
    let feats = prompt.class_features(model, tape)?;
    prompt.loss_from_class_features(model, tape, &feats, features, labels, scale)
}

/// Normalised image features `[B, P]` against normalised class-prompt features `[C, P]`
/// at the fixed logit `scale`; `labels` u32 `[B]`.
pub fn image_class_loss(img: &Var, txt: &Var, scale: f32, labels: &Tensor) -> Result<Var> {
    class_logits(img, txt, scale)?.cross_entropy(labels)
}

/// logits = scale * img @ txt^T for normalised features.
pub fn class_logits(img: &Var, txt: &Var, scale: f32) -> Result<Var> {
    let (b, p) = (img.shape()[0], img.shape()[1]);
    let c = txt.shape()[0];
    let spec = MatmulSpec {
        batch: 1,
        m: b,
        n: c,
        k: p,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    img.matmul_spec(txt, None, Act::None, spec)?.scale(scale)
}
