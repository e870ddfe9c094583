//! Runs split over several processes (`--task-index`/`--task-count`, or the variables of Slurm
//! job arrays, Kubernetes Indexed Jobs and MPI launchers), resumed runs (`--resume`), and
//! `tessera verify`, which checks an output written that way and marks it complete.

use super::{locate, Location, OutputArgs};
use clap::Args;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use tessera::dynarray::DynArray;
use tessera::exec::Shard;
use tessera::store::zarr::{PartOptions, PartReport, ZarrTarget};
use tessera::{Error, ExecOptions, Result};

pub(crate) const VERIFY_EXAMPLES: &str = "Examples:
  tessera cdist data/points.npy --chunk 500 -o dist.zarr --task-index 0 --task-count 2
  tessera cdist data/points.npy --chunk 500 -o dist.zarr --task-index 1 --task-count 2
  tessera verify dist.zarr
  tessera knn data/points.npy -k 8 --chunk 500 -o nn.zarr --task-index 0 --task-count 1 --resume
  tessera verify nn.zarr";

/// How a run splits over processes: which task this process is, and whether it resumes.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ShardArgs {
    /// This process's task, from 0, in a run split over --task-count processes that each write
    /// their share of the output's blocks into one Zarr store. Default: $SLURM_ARRAY_TASK_ID
    /// (minus $SLURM_ARRAY_TASK_MIN), $JOB_COMPLETION_INDEX (Kubernetes), $OMPI_COMM_WORLD_RANK,
    /// $PMI_RANK or $SLURM_PROCID.
    #[arg(long, value_name = "I")]
    task_index: Option<usize>,
    /// The number of tasks. Default: $SLURM_ARRAY_TASK_COUNT, $OMPI_COMM_WORLD_SIZE, $PMI_SIZE
    /// or $SLURM_NTASKS (a Kubernetes Indexed Job needs it given: its completions).
    #[arg(long, value_name = "N")]
    task_count: Option<usize>,
    /// Write into the Zarr output in place, skipping the chunks already there and valid, and
    /// computing the missing or corrupt ones (after a killed or failed run).
    #[arg(long)]
    resume: bool,
}

/// A run that writes its Zarr output in place: a share of a split run, or a resumed run.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    pub(crate) shard: Shard,
    /// Where the task numbers came from (`--task-index/--task-count`, `$SLURM_ARRAY_TASK_ID`...).
    pub(crate) source: String,
    pub(crate) resume: bool,
}

/// The task numbers of the launchers tessera knows, in the order they are looked for:
/// (index variable, count variable, launcher).
const LAUNCHERS: [(&str, &str, &str); 5] = [
    (
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "a Slurm job array",
    ),
    ("JOB_COMPLETION_INDEX", "", "a Kubernetes Indexed Job"),
    (
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "Open MPI's mpirun",
    ),
    ("PMI_RANK", "PMI_SIZE", "an MPI launcher (PMI)"),
    ("SLURM_PROCID", "SLURM_NTASKS", "Slurm's srun"),
];

impl ShardArgs {
    /// The part this process plays, from the flags and the environment; `None` for a plain run
    /// (one process, not resuming).
    pub(crate) fn part(&self) -> Result<Option<Part>> {
        self.part_from(&|name| std::env::var(name).ok())
    }

    fn part_from(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Part>> {
        let number =
            |name: &str| -> Result<Option<usize>> {
                match env(name).filter(|v| !v.trim().is_empty()) {
                    None => Ok(None),
                    Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                        Error::Invalid(format!("${name} = {v:?} is not a task number"))
                    }),
                }
            };
        // The first launcher whose index variable is set.
        let mut from_env: Option<(usize, Option<usize>, String)> = None;
        for (index_var, count_var, launcher) in LAUNCHERS {
            let Some(mut index) = number(index_var)? else {
                continue;
            };
            let mut count = if count_var.is_empty() {
                None
            } else {
                number(count_var)?
            };
            let mut source = format!("${index_var} of {launcher}");
            if index_var == "SLURM_ARRAY_TASK_ID" {
                // Array indices run from the array's first index, by its step.
                let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                index = index.checked_sub(min).ok_or_else(|| {
                    Error::Invalid(format!(
                        "$SLURM_ARRAY_TASK_ID = {index} is below $SLURM_ARRAY_TASK_MIN = {min}"
                    ))
                })? / step;
                source = format!("$SLURM_ARRAY_TASK_ID of {launcher}");
            }
            if count.is_none() && count_var.is_empty() && self.task_count.is_none() {
                return Err(Error::Invalid(format!(
                    "${index_var} is set ({launcher}): give the number of tasks (its completions) as --task-count"
                )));
            }
            count = count.filter(|_| self.task_count.is_none());
            from_env = Some((index, count, source));
            break;
        }
        let (index, count, source) = match (self.task_index, self.task_count, from_env) {
            (Some(i), Some(n), _) => (i, n, "--task-index/--task-count".to_string()),
            (Some(i), None, Some((_, Some(n), s))) => {
                (i, n, format!("--task-index, count from {s}"))
            }
            (Some(_), None, _) => {
                return Err(Error::Invalid(
                    "--task-index needs --task-count (the number of tasks)".into(),
                ))
            }
            (None, Some(n), Some((i, _, s))) => (i, n, s),
            (None, Some(1), None) => (0, 1, "--task-count".to_string()),
            (None, Some(n), None) => {
                return Err(Error::Invalid(format!(
                    "--task-count {n} needs --task-index (or a launcher's variable: {})",
                    LAUNCHERS.map(|l| format!("${}", l.0)).join(", ")
                )))
            }
            (None, None, Some((i, Some(n), s))) => (i, n, s),
            (None, None, Some((_, None, s))) => {
                return Err(Error::Invalid(format!(
                    "{s} gives no number of tasks: give --task-count"
                )))
            }
            (None, None, None) => (0, 1, String::new()),
        };
        let shard = Shard::new(index, count).map_err(|e| {
            Error::Invalid(if source.is_empty() {
                e.to_string()
            } else {
                format!("{e} (from {source})")
            })
        })?;
        if shard.is_whole() && !self.resume {
            return Ok(None);
        }
        Ok(Some(Part {
            shard,
            source,
            resume: self.resume,
        }))
    }
}

impl Part {
    /// `task I of N (from SOURCE)`, or `None` for a whole (resumed) run.
    fn task(&self) -> Option<String> {
        (!self.shard.is_whole()).then(|| {
            format!(
                "task {} of {} (from {})",
                self.shard.index(),
                self.shard.count(),
                self.source
            )
        })
    }

    /// Checks that `spec` can be written in place: a Zarr output, and no `--overwrite`.
    pub(crate) fn check_output(&self, spec: &str, overwrite: bool) -> Result<PathBuf> {
        let what = self.task().unwrap_or_else(|| "--resume".to_string());
        if overwrite {
            return Err(Error::Invalid(format!(
                "{what} writes into {spec} in place: --overwrite cannot be combined with it \
                 (remove the output before starting the tasks instead)"
            )));
        }
        match locate(spec)? {
            Location::Zarr(p) => Ok(p),
            _ => Err(Error::Invalid(format!(
                "{what} needs a Zarr output (dir.zarr), not {spec}: several processes can write \
                 one Zarr store chunk by chunk, but not one HDF5 or .npy file; convert the Zarr \
                 result afterwards (tessera convert)"
            ))),
        }
    }

    /// The options of `to_zarr_part`, recording `run` (the command and its parameters).
    pub(crate) fn options(&self, run: Map<String, Value>) -> PartOptions {
        PartOptions {
            shard: self.shard,
            resume: self.resume,
            run,
        }
    }

    /// The line a task prints once its share is written.
    pub(crate) fn summary(&self, dst: &Path, report: &PartReport) -> String {
        let s = report.stats;
        let who = self.task().unwrap_or_else(|| "resumed run".to_string());
        let state = if report.complete {
            "the array is complete".to_string()
        } else {
            format!(
                "once every task has finished, `tessera verify {}` checks the array and marks it complete",
                dst.display()
            )
        };
        if report.complete && s.blocks == 0 {
            return format!(
                "{who}: {} is already complete; nothing to do",
                dst.display()
            );
        }
        format!(
            "{who}: wrote {} of {} blocks of {} ({} already present); {state}",
            s.written,
            s.blocks,
            dst.display(),
            s.skipped
        )
    }
}

/// A recorded parameter naming an input file: its canonical path, so that workers started
/// from other directories agree.
pub(crate) fn input_path(spec: &str) -> Value {
    let (file, rest) = match spec.split_once(":/") {
        Some((f, r)) => (f, format!(":/{r}")),
        None => (spec, String::new()),
    };
    let canon = std::fs::canonicalize(file)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| file.to_string());
    Value::String(format!("{canon}{rest}"))
}

/// Writes `array` into the Zarr output `path` in place, as this part of the run.
pub(crate) fn write_part(
    array: &DynArray,
    path: &Path,
    out: &OutputArgs,
    part: &Part,
    run: Map<String, Value>,
    opts: &ExecOptions,
) -> Result<PartReport> {
    let zopts = super::zarr_options_at(out, false, path)?;
    array.to_zarr_part(path, &zopts, &part.options(run), opts)
}

/// Arguments of `tessera verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// A Zarr array (dir.zarr[/array]) or a group of arrays (a knn output).
    output: String,
}

/// At most this many keys are listed per kind of problem.
const LIST_LIMIT: usize = 20;

pub(crate) fn run_verify(args: &VerifyArgs, opts: &ExecOptions) -> Result<()> {
    let path = PathBuf::from(&args.output);
    let mut incomplete = Vec::new();
    let ctx = tessera::exec::ExecContext::new(opts.clone())?;
    for array in tessera::store::zarr::arrays_at(&path)? {
        let target = ZarrTarget::open(&array)?;
        let report = ctx.install(|| target.verify());
        let n = report.chunks;
        if !report.is_complete() {
            target.mark_incomplete()?;
        }
        if report.is_complete() {
            target.mark_complete()?;
            match report.absent {
                0 => println!(
                    "{}: {n} of {n} chunks present and valid; marked complete",
                    array.display()
                ),
                k => println!(
                    "{}: {} of {n} chunks present and valid, the other {k} absent (all fill \
                     value, as Zarr allows in an array not written in place); marked complete",
                    array.display(),
                    n - k
                ),
            }
            continue;
        }
        let bad = report.missing.len() + report.corrupt.len() + report.absent;
        println!(
            "{}: {} of {n} chunks present and valid; {} missing, {} corrupt",
            array.display(),
            n - bad,
            report.missing.len(),
            report.corrupt.len()
        );
        let more =
            |len: usize| (len > LIST_LIMIT).then(|| format!("  ... and {} more", len - LIST_LIMIT));
        for key in report.missing.iter().take(LIST_LIMIT) {
            println!("  missing {key}");
        }
        if let Some(m) = more(report.missing.len()) {
            println!("{m}");
        }
        for (key, why) in report.corrupt.iter().take(LIST_LIMIT) {
            println!("  corrupt {key}: {why}");
        }
        if let Some(m) = more(report.corrupt.len()) {
            println!("{m}");
        }
        incomplete.push(array.display().to_string());
    }
    if incomplete.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} incomplete (not marked complete): run the tasks that wrote the missing chunks \
         again, or the same command with --resume",
        incomplete.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(args: &ShardArgs, vars: &[(&str, &str)]) -> Result<Option<Part>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        args.part_from(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn shard(args: &ShardArgs, vars: &[(&str, &str)]) -> (usize, usize) {
        let p = part(args, vars).unwrap().unwrap();
        (p.shard.index(), p.shard.count())
    }

    fn flags(i: Option<usize>, n: Option<usize>) -> ShardArgs {
        ShardArgs {
            task_index: i,
            task_count: n,
            resume: false,
        }
    }

    #[test]
    fn flags_and_each_launcher_give_the_task() {
        let none = flags(None, None);
        assert!(part(&none, &[]).unwrap().is_none());
        assert_eq!(shard(&flags(Some(2), Some(4)), &[]), (2, 4));
        assert_eq!(
            shard(
                &none,
                &[
                    ("SLURM_ARRAY_TASK_ID", "7"),
                    ("SLURM_ARRAY_TASK_MIN", "5"),
                    ("SLURM_ARRAY_TASK_COUNT", "3")
                ]
            ),
            (2, 3)
        );
        assert_eq!(
            shard(
                &none,
                &[
                    ("SLURM_ARRAY_TASK_ID", "8"),
                    ("SLURM_ARRAY_TASK_STEP", "4"),
                    ("SLURM_ARRAY_TASK_COUNT", "4")
                ]
            ),
            (2, 4)
        );
        assert_eq!(
            shard(&flags(None, Some(5)), &[("JOB_COMPLETION_INDEX", "3")]),
            (3, 5)
        );
        assert_eq!(
            shard(
                &none,
                &[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")]
            ),
            (1, 4)
        );
        assert_eq!(
            shard(&none, &[("PMI_RANK", "0"), ("PMI_SIZE", "2")]),
            (0, 2)
        );
        // The flags win over the environment.
        assert_eq!(
            shard(
                &flags(Some(0), Some(2)),
                &[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")]
            ),
            (0, 2)
        );
        // One process of one task is a plain run.
        assert!(part(&none, &[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_task_numbers_are_named() {
        let err = |a: &ShardArgs, vars: &[(&str, &str)]| part(a, vars).unwrap_err().to_string();
        assert!(
            err(&flags(Some(4), Some(4)), &[]).contains("task index 4 is out of range for 4 tasks")
        );
        assert!(err(&flags(Some(0), Some(0)), &[]).contains("at least 1"));
        assert!(err(&flags(Some(1), None), &[]).contains("--task-index needs --task-count"));
        assert!(err(&flags(None, Some(3)), &[]).contains("needs --task-index"));
        assert!(err(&flags(None, None), &[("JOB_COMPLETION_INDEX", "1")]).contains("--task-count"));
        assert!(err(
            &flags(None, None),
            &[("OMPI_COMM_WORLD_RANK", "x"), ("OMPI_COMM_WORLD_SIZE", "2")]
        )
        .contains("$OMPI_COMM_WORLD_RANK = \"x\" is not a task number"));
        assert!(
            err(&flags(None, None), &[("PMI_RANK", "2"), ("PMI_SIZE", "2")])
                .contains("from $PMI_RANK")
        );
    }
}
