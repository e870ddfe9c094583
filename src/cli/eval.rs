//! `tessera eval`: a NumPy-like expression over named inputs.

use super::shard::{input_path, write_part, ShardArgs};
use super::{
    check_output, locate, open, refuse_input_as_output, write_output, Location, OutputArgs,
};
use clap::Args;
use std::collections::BTreeMap;
use tessera::dynarray::DynArray;
use tessera::expr::eval::{evaluate, Value};
use tessera::plan::explain::Explain;
use tessera::{Error, ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera eval 'sum(sqrt(ones((1000000,), chunks=10) * 4.0) + 1.0)'
  tessera eval 'mean(x, axis=0)' --in x=data/points.npy
  tessera eval '(x - x.mean(axis=0)) / x.std(axis=0)' --in x=data/points.npy -o z.npy
  tessera eval 'x.max(axis=0)' --in x=data/points.h5:/points
  tessera eval 'x[::2, 1:].T' --in x=data/points.npy --explain
  tessera eval 'x.rechunk((500, 3)) - x.mean(axis=0)' --in x=data/points.zarr --explain
  tessera eval 'sqrt(x * x + 1).sum(axis=0)' --in x=data/points.npy --explain --mem 1KiB

--explain prints the plan and runs nothing: every node (inputs indented under the node that
reads them) with its dtype, shape, blocks and chunk shape; whether it runs fused inside a task
(block by block, no intermediate array) or is materialised (computed once and held, as a
reduction read by a broadcast); the projected memory of one task of the output and of every
stage, the number of tasks, the memory each task may use (--mem over --threads) and whether the
plan fits. It exits 0 even when the plan does not fit: the line `fits NO: ...` gives the error
the run would stop with.";

/// Results up to this size are printed; larger ones are summarised.
const PRINT_LIMIT: usize = 1 << 20;

/// Arguments of `tessera eval`.
#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    /// The expression, in NumPy's syntax (`sum(x ** 2, axis=0)`, `x[::2].T`, `where(x > 0, x, 0)`).
    #[arg(allow_hyphen_values = true)]
    expr: String,
    /// An input: NAME=PATH, where PATH is file.npy, dir.zarr[/array] or file.h5:/dataset.
    #[arg(long = "in", value_name = "NAME=PATH")]
    inputs: Vec<String>,
    /// Write the result here (file.npy, dir.zarr or file.h5:/dataset); a scalar becomes a 0-d array.
    #[arg(short, long, value_name = "OUT")]
    output: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    overwrite: bool,
    /// Print the plan instead of running it: nodes, blocks, what is fused and what is
    /// materialised, projected memory per task, tasks, and whether it fits --mem (exit 0 even
    /// when it does not).
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

pub(crate) fn run(args: &EvalArgs, opts: &ExecOptions) -> Result<()> {
    let mut inputs = BTreeMap::new();
    for spec in &args.inputs {
        let (name, path) = spec.split_once('=').ok_or_else(|| {
            Error::Invalid(format!(
                "--in {spec}: expected NAME=PATH, like x=data/points.npy"
            ))
        })?;
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::Invalid(format!(
                "--in {spec}: {name:?} is not a valid name"
            )));
        }
        if inputs.insert(name.to_string(), open(path, opts)?).is_some() {
            return Err(Error::Invalid(format!("--in {name} is given twice")));
        }
    }
    if let Some(o) = &args.output {
        let specs: Vec<&str> = args
            .inputs
            .iter()
            .filter_map(|s| s.split_once('=').map(|(_, p)| p))
            .collect();
        refuse_input_as_output(&specs, o)?;
    }
    let part = args.shard.part()?;
    let out = match (&part, args.output.as_deref()) {
        (Some(p), Some(o)) => Some(p.check_output(o, args.overwrite)?),
        (Some(_), None) => {
            return Err(Error::Invalid(
                "a split or resumed run (--task-index/--task-count, --resume) needs an output: -o OUT.zarr".into(),
            ))
        }
        (None, o) => o.map(|o| check_output(o, args.overwrite)).transpose()?,
    };
    let value = evaluate(&args.expr, &inputs)?;
    let array = match value {
        Value::Array(a) => a,
        Value::Scalar(s) => DynArray::scalar(s, s.dtype())?,
        Value::Tuple(items) if out.is_none() => {
            println!("{}", format_tuple(&items));
            return Ok(());
        }
        other => {
            return Err(Error::Invalid(format!(
                "the expression gives {}, not an array",
                match other {
                    Value::Tuple(_) => "a tuple",
                    Value::DType(_) => "a dtype",
                    Value::Function(..) => "a function (did you forget the parentheses?)",
                    _ => "None",
                }
            )))
        }
    };
    if args.explain {
        print!(
            "{}",
            explain(&array, args.output.as_deref(), &args.out, opts)?
        );
        return Ok(());
    }
    match (out, &part) {
        (Some(path), Some(p)) => {
            let mut run = serde_json::Map::new();
            run.insert("command".into(), "eval".into());
            run.insert("expr".into(), args.expr.clone().into());
            let named: serde_json::Map<String, serde_json::Value> = args
                .inputs
                .iter()
                .filter_map(|s| s.split_once('='))
                .map(|(n, p)| (n.to_string(), input_path(p)))
                .collect();
            run.insert("inputs".into(), named.into());
            let report = write_part(&array, &path, &args.out, p, run, opts)?;
            println!("{}", p.summary(&path, &report));
        }
        (Some(path), None) => {
            let spec = args.output.as_deref().unwrap_or_default();
            write_output(&array, spec, &path, &args.out, args.overwrite, opts)?;
            println!(
                "wrote {} {:?} {} to {}",
                array.dtype(),
                array.shape(),
                tessera::error::fmt_bytes(array.nbytes()),
                spec
            );
        }
        (None, _) if array.nbytes() <= PRINT_LIMIT => {
            println!("{}", array.compute_to_string(opts)?)
        }
        (None, _) => {
            println!("{array}\n(not computed: larger than 1 MiB; write it with -o OUT.npy)")
        }
    }
    Ok(())
}

/// The plan as the run would check it: an output that stores blocks in parts (uncompressed Zarr
/// in a directory, unfiltered HDF5) holds a distance tile to its strips; a filtered HDF5
/// output's writer buffers count too.
fn explain(
    array: &DynArray,
    output: Option<&str>,
    out: &OutputArgs,
    opts: &ExecOptions,
) -> Result<String> {
    Ok(match output.map(locate).transpose()? {
        Some(Location::Hdf5(..)) => hdf5_explain(array, out, opts)?,
        Some(Location::Zarr(root))
            if tessera::store::zarr::writes_in_parts(&super::zarr_options(out, false)?, &root) =>
        {
            Explain::in_parts(array.node(), opts).to_string()
        }
        _ => array.explain_with(opts).to_string(),
    })
}

#[cfg(feature = "hdf5")]
fn hdf5_explain(array: &DynArray, out: &OutputArgs, opts: &ExecOptions) -> Result<String> {
    let hopts = super::hdf5_options(out, false)?;
    Ok(
        if tessera::store::hdf5::writes_in_parts(&hopts, array.shape().len()) {
            let plan = Explain::in_parts(array.node(), opts);
            format!("{plan}(the HDF5 output is unfiltered: its chunks are written in place, with no chunk writer)\n")
        } else {
            let (per_task, shared) = tessera::store::hdf5::writer_bytes(
                &array.grid().max_chunk_shape(),
                array.dtype(),
                &hopts,
                opts,
            );
            let plan = Explain::with_sink(array.node(), opts, per_task, shared);
            format!(
            "{plan}(the HDF5 output's chunk writer is counted: {} in every output task, {} shared)\n",
            tessera::error::fmt_bytes(per_task),
            tessera::error::fmt_bytes(shared)
        )
        },
    )
}

#[cfg(not(feature = "hdf5"))]
fn hdf5_explain(array: &DynArray, _out: &OutputArgs, opts: &ExecOptions) -> Result<String> {
    Ok(array.explain_with(opts).to_string())
}

fn format_tuple(items: &[Value]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|v| match v {
            Value::Scalar(s) => s.to_string(),
            Value::Tuple(t) => format_tuple(t),
            Value::DType(d) => d.to_string(),
            Value::None => "None".into(),
            Value::Array(a) => a.to_string(),
            Value::Function(n, _) => n.clone(),
        })
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}
