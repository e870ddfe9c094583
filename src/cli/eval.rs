//! `tessera eval`: a NumPy-like expression over named inputs.

use super::{check_output, open, refuse_input_as_output, write_output, OutputArgs};
use clap::Args;
use std::collections::BTreeMap;
use tessera::dynarray::DynArray;
use tessera::expr::eval::{evaluate, Value};
use tessera::{Error, ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera eval 'sum(sqrt(ones((1000000,), chunks=10) * 4.0) + 1.0)'
  tessera eval 'mean(x, axis=0)' --in x=data/points.npy
  tessera eval '(x - x.mean(axis=0)) / x.std(axis=0)' --in x=data/points.npy -o z.npy
  tessera eval 'x[::2, 1:].T' --in x=data/points.npy --explain";

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
    /// Print the plan (operations, blocks, projected memory per task) instead of running it.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    out: OutputArgs,
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
        if inputs.insert(name.to_string(), open(path)?).is_some() {
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
    let out = args
        .output
        .as_deref()
        .map(|o| check_output(o, args.overwrite))
        .transpose()?;
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
        print!("{}", array.explain());
        return Ok(());
    }
    match out {
        Some(path) => {
            let spec = args.output.as_deref().unwrap_or_default();
            write_output(&array, spec, &path, &args.out, args.overwrite, opts)?;
            println!(
                "wrote {} {:?} {} to {}",
                array.dtype(),
                array.shape(),
                tessera::error::fmt_bytes(array.nbytes()),
                path.display()
            );
        }
        None if array.nbytes() <= PRINT_LIMIT => println!("{}", array.compute_to_string(opts)?),
        None => println!("{array}\n(not computed: larger than 1 MiB; write it with -o OUT.npy)"),
    }
    Ok(())
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
