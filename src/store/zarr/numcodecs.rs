//! v3 arrays whose compressor zarr-python wrote through `numcodecs.zarr3`.
//!
//! zarr-python names numcodecs' compressors in v3 metadata `numcodecs.gzip`, `numcodecs.zstd`,
//! `numcodecs.blosc` and `numcodecs.zlib`, with only the settings that differ from numcodecs'
//! defaults (often none). The chunks of the first three are the streams the core `gzip`,
//! `zstd` and `blosc` codecs read: a gzip member, zstd frames, a Blosc buffer that describes
//! itself in its header. zarrs knows those three only by their core names, and all four only
//! with their settings spelled out, so their metadata is read here, each such codec renamed
//! (zlib keeps its name) and its settings completed from numcodecs' defaults, and the array
//! opened from that. Nothing is written back to the store.

use super::ZArray;
use crate::element::DType;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use zarrs::array::{ArrayMetadata, ArrayMetadataV3};
use zarrs::node::{meta_key_v3, NodePath};
use zarrs::storage::ReadableWritableListableStorage;

/// Opens the array at `inner` of `storage`, reading the numcodecs compressors of a v3 array as
/// the core codecs (see the module's documentation).
///
/// # Errors
/// What zarrs says of the array or of its metadata.
pub(super) fn open(
    storage: &ReadableWritableListableStorage,
    inner: &str,
) -> Result<ZArray, String> {
    if let Some((meta, _)) = renamed_metadata(storage, inner)? {
        if let Some((name, _)) = meta
            .additional_fields
            .iter()
            .find(|(_, f)| f.must_understand())
        {
            return Err(format!(
                "unsupported metadata field {name} (must_understand)"
            ));
        }
        return ZArray::new_with_metadata(Arc::clone(storage), inner, ArrayMetadata::V3(meta))
            .map_err(|e| e.to_string());
    }
    ZArray::open(Arc::clone(storage), inner).map_err(|e| e.to_string())
}

/// The numcodecs compressors of the v3 array at `inner` that [`open`] reads as core codecs,
/// each as `numcodecs.zstd as zstd` (for `info`, which shows the chain zarrs opened).
pub(super) fn read_as_core(storage: &ReadableWritableListableStorage, inner: &str) -> Vec<String> {
    renamed_metadata(storage, inner)
        .ok()
        .flatten()
        .map(|(_, names)| names)
        .unwrap_or_default()
}

/// The v3 metadata of the array at `inner` with its numcodecs compressors renamed, and what was
/// renamed; `None` when there is no v3 metadata or it names none of them (zarrs then opens the
/// array itself).
fn renamed_metadata(
    storage: &ReadableWritableListableStorage,
    inner: &str,
) -> Result<Option<(ArrayMetadataV3, Vec<String>)>, String> {
    let key = meta_key_v3(&NodePath::new(inner).map_err(|e| e.to_string())?);
    let Some(bytes) = storage.get(&key).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    // Most arrays never name numcodecs: those are parsed once, by zarrs.
    if !bytes.windows(10).any(|w| w == b"numcodecs.") {
        return Ok(None);
    }
    let mut meta: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{key}: not valid JSON: {e}"))?;
    let typesize = meta
        .get("data_type")
        .and_then(Value::as_str)
        .and_then(|name| DType::from_name(name).ok())
        .map(|d| d.size() as u64);
    let mut renamed = Vec::new();
    if let Some(Value::Array(codecs)) = meta.get_mut("codecs") {
        rename_all(codecs, typesize, &mut renamed);
    }
    if renamed.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(meta)
        .map(|meta| Some((meta, renamed)))
        .map_err(|e| format!("{key}: {e}"))
}

/// Renames the numcodecs compressors of a codec chain, and of the chains inside its sharding
/// codecs, adding each renaming to `renamed` (`numcodecs.zstd as zstd`).
fn rename_all(codecs: &mut [Value], typesize: Option<u64>, renamed: &mut Vec<String>) {
    for codec in codecs {
        let Some(obj) = codec.as_object_mut() else {
            continue;
        };
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        if name == "sharding_indexed" {
            if let Some(Value::Object(conf)) = obj.get_mut("configuration") {
                for inner in ["codecs", "index_codecs"] {
                    if let Some(Value::Array(chain)) = conf.get_mut(inner) {
                        rename_all(chain, typesize, renamed);
                    }
                }
            }
        } else if let Some(core) = core_codec(name, obj.get("configuration"), typesize) {
            let core_name = core["name"].as_str().unwrap_or_default();
            renamed.push(if core_name == name {
                format!("{name} with numcodecs' defaults")
            } else {
                format!("{name} as {core_name}")
            });
            *codec = core;
        }
    }
}

/// The core codec that reads the chunks of numcodecs' compressor `name` with `configuration`
/// (settings left out take numcodecs' defaults), or `None` for any other codec.
fn core_codec(name: &str, configuration: Option<&Value>, typesize: Option<u64>) -> Option<Value> {
    let empty = Map::new();
    let conf = configuration.and_then(Value::as_object).unwrap_or(&empty);
    let int = |key: &str, default: i64| conf.get(key).and_then(Value::as_i64).unwrap_or(default);
    match name {
        // numcodecs.GZip(level=1).
        "numcodecs.gzip" => {
            Some(json!({"name": "gzip", "configuration": {"level": int("level", 1)}}))
        }
        // numcodecs.Zstd(level=0, checksum=False); a frame says itself whether it has a checksum.
        "numcodecs.zstd" => Some(json!({"name": "zstd", "configuration": {
            "level": int("level", 0),
            "checksum": conf.get("checksum").and_then(Value::as_bool).unwrap_or(false),
        }})),
        // numcodecs.Blosc(cname="lz4", clevel=5, shuffle=SHUFFLE, blocksize=0); the shuffle as
        // a number: -1 AUTOSHUFFLE (bit-shuffle for 1-byte elements), 0 none, 1 byte, 2 bit.
        // numcodecs.Zlib(level=1): zarrs reads `numcodecs.zlib` itself, but only with its
        // level spelled out.
        "numcodecs.zlib" if !conf.contains_key("level") => Some(json!({
            "name": "numcodecs.zlib",
            "configuration": {"level": 1},
        })),
        "numcodecs.blosc" => {
            let shuffle = match (int("shuffle", 1), typesize) {
                (0, _) => "noshuffle",
                (2, _) | (-1, Some(1)) => "bitshuffle",
                _ => "shuffle",
            };
            let mut core = json!({
                "cname": conf.get("cname").and_then(Value::as_str).unwrap_or("lz4"),
                "clevel": int("clevel", 5),
                "shuffle": shuffle,
                "blocksize": int("blocksize", 0),
            });
            if let (Some(size), Some(obj)) = (typesize, core.as_object_mut()) {
                obj.insert("typesize".into(), json!(size));
            }
            Some(json!({"name": "blosc", "configuration": core}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(codec: Value, typesize: Option<u64>) -> Value {
        let mut chain = vec![json!({"name": "bytes"}), codec];
        let mut names = Vec::new();
        rename_all(&mut chain, typesize, &mut names);
        assert_eq!(names.len(), 1);
        chain.pop().unwrap_or_default()
    }

    #[test]
    fn numcodecs_compressors_become_core_codecs_with_numcodecs_defaults() {
        let gzip = renamed(
            json!({"name": "numcodecs.gzip", "configuration": {}}),
            Some(8),
        );
        assert_eq!(gzip, json!({"name": "gzip", "configuration": {"level": 1}}));
        let gzip = renamed(
            json!({"name": "numcodecs.gzip", "configuration": {"level": 7}}),
            None,
        );
        assert_eq!(gzip, json!({"name": "gzip", "configuration": {"level": 7}}));
        // No configuration at all.
        let zstd = renamed(json!({"name": "numcodecs.zstd"}), Some(4));
        assert_eq!(
            zstd,
            json!({"name": "zstd", "configuration": {"level": 0, "checksum": false}})
        );
        let zstd = renamed(
            json!({"name": "numcodecs.zstd", "configuration": {"level": -3, "checksum": true}}),
            Some(4),
        );
        assert_eq!(
            zstd,
            json!({"name": "zstd", "configuration": {"level": -3, "checksum": true}})
        );
        let blosc = renamed(
            json!({"name": "numcodecs.blosc", "configuration": {}}),
            Some(8),
        );
        assert_eq!(
            blosc,
            json!({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                "shuffle": "shuffle", "blocksize": 0, "typesize": 8}})
        );
        for (shuffle, size, mode) in [
            (0, Some(8), "noshuffle"),
            (1, Some(1), "shuffle"),
            (2, Some(4), "bitshuffle"),
            (-1, Some(1), "bitshuffle"),
            (-1, Some(2), "shuffle"),
        ] {
            let blosc = renamed(
                json!({"name": "numcodecs.blosc", "configuration": {"cname": "zstd",
                    "clevel": 9, "shuffle": shuffle, "blocksize": 65536}}),
                size,
            );
            assert_eq!(
                blosc["configuration"]["shuffle"],
                json!(mode),
                "{shuffle} {size:?}"
            );
            assert_eq!(blosc["configuration"]["cname"], json!("zstd"));
            assert_eq!(blosc["configuration"]["clevel"], json!(9));
            assert_eq!(blosc["configuration"]["blocksize"], json!(65536));
        }
    }

    #[test]
    fn chains_inside_sharding_are_renamed_and_other_codecs_kept() {
        let mut chain = vec![json!({"name": "sharding_indexed", "configuration": {
            "chunk_shape": [2, 2],
            "codecs": [{"name": "bytes"}, {"name": "numcodecs.zstd", "configuration": {"level": 3}}],
            "index_codecs": [{"name": "bytes"}, {"name": "crc32c"}],
        }})];
        let mut names = Vec::new();
        rename_all(&mut chain, Some(8), &mut names);
        assert_eq!(names, ["numcodecs.zstd as zstd"]);
        assert_eq!(
            chain[0]["configuration"]["codecs"][1],
            json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}})
        );
        assert_eq!(
            chain[0]["configuration"]["index_codecs"][1],
            json!({"name": "crc32c"})
        );
        // numcodecs.Zlib() without a level: numcodecs' level 1 spelled out for zarrs.
        let mut names = Vec::new();
        let mut chain = vec![json!({"name": "numcodecs.zlib", "configuration": {}})];
        rename_all(&mut chain, Some(8), &mut names);
        assert_eq!(
            chain[0],
            json!({"name": "numcodecs.zlib", "configuration": {"level": 1}})
        );
        assert_eq!(names, ["numcodecs.zlib with numcodecs' defaults"]);
        // Nothing numcodecs zarrs would not open by itself: left to zarrs, unchanged.
        let mut chain = vec![
            json!({"name": "bytes"}),
            json!({"name": "numcodecs.zlib", "configuration": {"level": 1}}),
            json!({"name": "numcodecs.lzma"}),
        ];
        let before = chain.clone();
        let mut names = Vec::new();
        rename_all(&mut chain, Some(8), &mut names);
        assert!(names.is_empty());
        assert_eq!(chain, before);
    }
}
