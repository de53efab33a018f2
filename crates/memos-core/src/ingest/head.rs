//! A small trained head over sentence vectors that finds the preferences the rules miss
//! (issue 18): word lists catch "I love" and "我不吃辣" but generalise poorly to the many
//! other ways people say what they like ("Nothing beats a bowl of ramen on a cold day").
//!
//! Three linear models over the embedding model's vector of a fact as memos stores it ("The
//! user can't stand horror movies", the text its memory is embedded by, so the add reuses
//! the vector): is it a preference, like or dislike, and which topic. They are trained by `memos bench extract
//! --train-head` on the `dev` half of the labelled sets only (the `heldout` half scores
//! them), and shipped as `preference-head.json` for the one model they were trained on:
//! vectors of another model mean nothing to them, so with any other model the rules work
//! alone.
//!
//! The rules stay the precision guard: the head only judges sentences the rules already
//! read as a statement about the speaker (no question, no request, no one else's taste),
//! and only adds what the rules did not find.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::facts::{Fact, Polarity, Topic};
use crate::error::{Error, Result};

/// The head trained for the default model, built into the binary.
static BUILTIN: LazyLock<Option<PreferenceHead>> = LazyLock::new(|| {
    PreferenceHead::from_json(include_str!("preference-head.json"))
        .inspect_err(|e| tracing::warn!("the built-in preference head is unusable: {e}"))
        .ok()
});

/// One logistic (or, with several, softmax) unit over a standardized vector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Linear {
    /// Weights, one per vector component.
    pub w: Vec<f32>,
    /// Bias.
    pub b: f32,
}

impl Linear {
    fn zeros(dim: usize) -> Self {
        Self {
            w: vec![0.0; dim],
            b: 0.0,
        }
    }

    fn logit(&self, x: &[f32]) -> f32 {
        self.b + self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>()
    }
}

/// What the head makes of one sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Probability that the sentence states a preference of the speaker.
    pub preference: f32,
    /// Like or dislike, should it be one.
    pub polarity: Polarity,
    /// The most likely topic, and its probability.
    pub topic: (Topic, f32),
}

/// The trained head: standardization, then the three models.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreferenceHead {
    /// The embedding model whose vectors it was trained on (`Embedder::model_id`).
    pub model_id: String,
    /// Per-component mean of the training vectors.
    pub mean: Vec<f32>,
    /// Per-component 1 / standard deviation.
    pub scale: Vec<f32>,
    /// Preference or not.
    pub detect: Linear,
    /// Like (1) or dislike (0).
    pub polarity: Linear,
    /// Topic names (`Topic::name`), one softmax unit each.
    pub topics: Vec<String>,
    /// The softmax units, in `topics` order.
    pub topic: Vec<Linear>,
    /// The preference probability from which a fact the rules left neutral becomes one;
    /// chosen by cross-validation on the dev half for precision.
    pub threshold: f32,
    /// The topic probability from which the head's topic replaces the rules' one.
    pub topic_threshold: f32,
    /// The L2 regularisation it was trained with (chosen by cross-validation).
    pub l2: f32,
}

/// The head's verdicts on the facts of one add. They are computed before extraction
/// (vectors come from the embedder, off the async executor; extraction is synchronous)
/// and looked up by sentence while it runs. The vectors judged are those of the facts'
/// own stored text, kept here so that the add stores them instead of embedding again.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    head: Option<&'static PreferenceHead>,
    verdicts: HashMap<String, Verdict>,
    vectors: HashMap<String, Vec<f32>>,
}

impl Judged {
    /// `head`'s verdicts on facts: (sentence, the text embedded for its memory, its vector).
    pub fn new(head: &'static PreferenceHead, facts: Vec<(String, String, Vec<f32>)>) -> Self {
        let mut out = Self {
            head: Some(head),
            ..Self::default()
        };
        for (sentence, text, vector) in facts {
            out.verdicts.insert(sentence, head.judge(&vector));
            out.vectors.insert(text, vector);
        }
        out
    }

    /// Applies the verdict on the fact's sentence, if there is one.
    pub fn apply(&self, fact: &mut Fact) {
        if let (Some(head), Some(v)) = (self.head, self.verdicts.get(&fact.sentence)) {
            head.apply(fact, v);
        }
    }

    /// The vector judged for a memory whose embedded text is `text`, if one was.
    pub fn vector(&self, text: &str) -> Option<&[f32]> {
        self.vectors.get(text).map(Vec::as_slice)
    }
}

/// A labelled vector to train on.
#[derive(Debug, Clone)]
pub struct Example {
    /// The sentence's vector.
    pub vector: Vec<f32>,
    /// Like, dislike, or no preference.
    pub preference: Option<Polarity>,
    /// Its topic, when labelled.
    pub topic: Option<Topic>,
}

impl PreferenceHead {
    /// The built-in head, when it was trained for `model_id`.
    pub fn builtin(model_id: &str) -> Option<&'static PreferenceHead> {
        BUILTIN.as_ref().filter(|h| h.model_id == model_id)
    }

    /// Reads a head from JSON, checking its shapes.
    pub fn from_json(text: &str) -> Result<Self> {
        let head: Self = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("preference head: {e}")))?;
        let dim = head.mean.len();
        let ok = head.scale.len() == dim
            && head.detect.w.len() == dim
            && head.polarity.w.len() == dim
            && head.topic.len() == head.topics.len()
            && head.topic.iter().all(|t| t.w.len() == dim)
            && head.topics.iter().all(|t| Topic::from_name(t).is_some());
        if ok {
            Ok(head)
        } else {
            Err(Error::Config("preference head: inconsistent shapes".into()))
        }
    }

    fn standardize(&self, v: &[f32]) -> Vec<f32> {
        v.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((x, m), s)| (x - m) * s)
            .collect()
    }

    /// Judges one sentence's vector.
    pub fn judge(&self, vector: &[f32]) -> Verdict {
        let x = self.standardize(vector);
        let polarity = if sigmoid(self.polarity.logit(&x)) >= 0.5 {
            Polarity::Like
        } else {
            Polarity::Dislike
        };
        let probs = softmax(&self.topic.iter().map(|t| t.logit(&x)).collect::<Vec<_>>());
        let (best, p) = probs
            .iter()
            .copied()
            .enumerate()
            .fold((0, 0.0f32), |b, (i, p)| if p > b.1 { (i, p) } else { b });
        let topic = self
            .topics
            .get(best)
            .and_then(|t| Topic::from_name(t))
            .unwrap_or(Topic::Other);
        Verdict {
            preference: sigmoid(self.detect.logit(&x)),
            polarity,
            topic: (topic, p),
        }
    }

    /// Applies a verdict to a fact the rules found: a preference the rules missed is added
    /// when the head is sure enough, and a confident topic replaces a rule's guess. A
    /// preference the rules found keeps their polarity, which they read from the words.
    pub fn apply(&self, fact: &mut Fact, verdict: &Verdict) {
        if fact.topic == Topic::Assistant {
            // A wish about the assistant is the directive rules' call, worded for them.
            return;
        }
        if fact.preference.is_none() && verdict.preference >= self.threshold {
            fact.preference = Some(verdict.polarity);
        }
        if fact.preference.is_some()
            && verdict.topic.0 != Topic::Assistant
            && (verdict.topic.1 >= self.topic_threshold || fact.topic == Topic::Other)
        {
            fact.topic = verdict.topic.0;
        }
    }

    /// Trains the three models on `examples` (vectors of `model_id`) with L2 regularisation
    /// `l2`; both thresholds start at 0.5.
    pub fn train(model_id: &str, examples: &[Example], l2: f32) -> Self {
        let dim = examples.first().map_or(0, |e| e.vector.len());
        let n = examples.len().max(1) as f32;
        let mut mean = vec![0.0f32; dim];
        for e in examples {
            for (m, x) in mean.iter_mut().zip(&e.vector) {
                *m += x / n;
            }
        }
        let mut var = vec![0.0f32; dim];
        for e in examples {
            for ((v, x), m) in var.iter_mut().zip(&e.vector).zip(&mean) {
                *v += (x - m) * (x - m) / n;
            }
        }
        let scale: Vec<f32> = var.iter().map(|v| 1.0 / v.sqrt().max(1e-6)).collect();
        let mut head = Self {
            model_id: model_id.to_string(),
            mean,
            scale,
            detect: Linear::zeros(dim),
            polarity: Linear::zeros(dim),
            topics: vec![],
            topic: vec![],
            threshold: 0.5,
            topic_threshold: 0.5,
            l2,
        };
        let xs: Vec<Vec<f32>> = examples
            .iter()
            .map(|e| head.standardize(&e.vector))
            .collect();
        let all: Vec<(&[f32], usize)> = xs
            .iter()
            .zip(examples)
            .map(|(x, e)| (x.as_slice(), usize::from(e.preference.is_some())))
            .collect();
        head.detect = fit_logistic(&all, dim, l2);
        let prefs: Vec<(&[f32], usize)> = xs
            .iter()
            .zip(examples)
            .filter_map(|(x, e)| {
                e.preference
                    .map(|p| (x.as_slice(), usize::from(p == Polarity::Like)))
            })
            .collect();
        head.polarity = fit_logistic(&prefs, dim, l2);
        let mut topics: Vec<Topic> = examples.iter().filter_map(|e| e.topic).collect();
        topics.sort_by_key(|t| t.name());
        topics.dedup();
        let labelled: Vec<(&[f32], usize)> = xs
            .iter()
            .zip(examples)
            .filter_map(|(x, e)| {
                let t = e.topic?;
                Some((x.as_slice(), topics.iter().position(|&u| u == t)?))
            })
            .collect();
        head.topic = fit_softmax(&labelled, topics.len(), dim, l2);
        head.topics = topics.iter().map(|t| t.name().to_string()).collect();
        head
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

const STEPS: usize = 400;
const RATE: f32 = 0.5;

/// Logistic regression of labels 0 / 1: the softmax of two units, folded into one (the
/// second unit's logit minus the first's).
fn fit_logistic(data: &[(&[f32], usize)], dim: usize, l2: f32) -> Linear {
    let units = fit_softmax(data, 2, dim, l2);
    let (a, b) = (&units[0], &units[1]);
    Linear {
        w: a.w.iter().zip(&b.w).map(|(a, b)| b - a).collect(),
        b: b.b - a.b,
    }
}

/// Softmax regression by full-batch gradient descent: one unit per class.
fn fit_softmax(data: &[(&[f32], usize)], classes: usize, dim: usize, l2: f32) -> Vec<Linear> {
    let mut units = vec![Linear::zeros(dim); classes];
    if data.is_empty() || classes == 0 {
        return units;
    }
    let n = data.len() as f32;
    for _ in 0..STEPS {
        let mut grads = vec![Linear::zeros(dim); classes];
        for (x, y) in data {
            let probs = softmax(&units.iter().map(|u| u.logit(x)).collect::<Vec<_>>());
            for (k, (g, p)) in grads.iter_mut().zip(probs).enumerate() {
                let err = p - f32::from(u8::from(k == *y));
                g.b += err / n;
                for (gw, xi) in g.w.iter_mut().zip(x.iter()) {
                    *gw += err * xi / n;
                }
            }
        }
        for (u, g) in units.iter_mut().zip(grads) {
            u.b -= RATE * g.b;
            for (w, gw) in u.w.iter_mut().zip(g.w) {
                *w -= RATE * (gw + l2 * *w);
            }
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(v: [f32; 3], preference: Option<Polarity>, topic: Option<Topic>) -> Example {
        Example {
            vector: v.to_vec(),
            preference,
            topic,
        }
    }

    #[test]
    fn a_head_learns_separable_examples() {
        let like = Some(Polarity::Like);
        let dislike = Some(Polarity::Dislike);
        let examples = vec![
            example([1.0, 0.9, 0.0], like, Some(Topic::Food)),
            example([1.0, 1.1, 0.1], like, Some(Topic::Food)),
            example([1.0, -1.0, 0.0], dislike, Some(Topic::Travel)),
            example([0.9, -1.1, 0.1], dislike, Some(Topic::Travel)),
            example([-1.0, 0.0, 1.0], None, None),
            example([-1.1, 0.1, 0.9], None, None),
        ];
        let head = PreferenceHead::train("m", &examples, 0.01);
        let v = head.judge(&[1.0, 1.0, 0.0]);
        assert!(v.preference > 0.5, "{v:?}");
        assert_eq!(v.polarity, Polarity::Like);
        assert_eq!(v.topic.0, Topic::Food);
        let v = head.judge(&[1.0, -1.0, 0.0]);
        assert_eq!((v.polarity, v.topic.0), (Polarity::Dislike, Topic::Travel));
        assert!(head.judge(&[-1.0, 0.0, 1.0]).preference < 0.5);
        let json = serde_json::to_string(&head).unwrap();
        assert_eq!(PreferenceHead::from_json(&json).unwrap(), head);
    }

    #[test]
    fn the_builtin_head_parses_and_fits_its_model() {
        let head = BUILTIN.as_ref().expect("preference-head.json parses");
        PreferenceHead::from_json(include_str!("preference-head.json")).unwrap();
        assert!(PreferenceHead::builtin(&head.model_id).is_some());
        assert!(PreferenceHead::builtin("another model").is_none());
    }
}
