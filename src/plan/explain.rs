//! A plan shown to its user before it runs: the nodes, their grids, what runs fused inside
//! which task and what is materialised, the executor's memory projection of every task and
//! whether the plan fits the allowed memory (what `tessera eval --explain` prints).

use super::{max_block_bytes, task_bytes, PlanNode};
use crate::element::DType;
use crate::error::fmt_bytes;
use crate::exec::{check, check_memory, output_task_bytes, ExecOptions};
use std::fmt;

/// How a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The array asked for: one task per output block (a pdist matrix: per block on and
    /// above the diagonal).
    Output,
    /// The input of a materialised node: its own tasks, run before the tasks that read it.
    Stage,
    /// Computed once by its stage before the tasks that read it, and held in memory (a
    /// reduction read by a broadcast).
    Materialised,
    /// Runs inside the task of the output or stage node above it, region by region, with no
    /// intermediate array (an elementwise chain, a slice, a source read).
    Fused,
}

impl Role {
    /// The word used in plans.
    pub fn name(self) -> &'static str {
        match self {
            Role::Output => "output",
            Role::Stage => "stage",
            Role::Materialised => "materialised",
            Role::Fused => "fused",
        }
    }
}

/// One node of an [`Explain`], in the order of the tree (a node, then its inputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainNode {
    /// Depth in the tree (0 for the output).
    pub depth: usize,
    /// The operation ([`PlanNode::op`]).
    pub op: String,
    /// Element type of the node's output.
    pub dtype: DType,
    /// Shape of the node's output.
    pub shape: Vec<usize>,
    /// Blocks along every axis of the node's grid.
    pub blocks_per_axis: Vec<usize>,
    /// The largest block's shape.
    pub chunk_shape: Vec<usize>,
    /// How the node runs.
    pub role: Role,
    /// For [`Role::Output`] and [`Role::Stage`]: the projected bytes of one task, the figure
    /// the memory check compares with the memory per thread. For [`Role::Materialised`]: the
    /// bytes held. For [`Role::Fused`]: the node's own share of the task it runs in.
    pub bytes: usize,
    /// Tasks the node runs ([`Role::Output`] and [`Role::Stage`]; 0 for the others).
    pub tasks: usize,
    /// How the node makes its blocks, when it says ([`PlanNode::describe`]).
    pub detail: Option<String>,
    /// Whether this is a materialised node already shown above (computed once; its inputs
    /// are not repeated).
    pub repeat: bool,
}

impl ExplainNode {
    /// Number of blocks.
    pub fn nblocks(&self) -> usize {
        self.blocks_per_axis.iter().product()
    }
}

/// The plan of an array as it would run with given options. `Display` prints it as a table
/// with a summary.
///
/// ```
/// use tessera::{ChunkedArray, ExecOptions};
/// use tessera::ops::reduce::ReduceOpts;
/// use tessera::plan::explain::{Explain, Role};
///
/// let x = ChunkedArray::<f64>::ones(&[1000, 4], [250, 4])?;
/// let y = x.sub(&x.mean(ReduceOpts::axis(0))?)?.sqrt();
/// let plan = Explain::new(y.node().as_ref(), &ExecOptions::default().threads(2));
/// assert_eq!(plan.nodes[0].op, "sqrt");
/// assert_eq!(plan.nodes[0].role, Role::Output);
/// assert!(plan.nodes.iter().any(|n| n.role == Role::Materialised));
/// assert_eq!(plan.tasks, 4 + 1); // 4 output blocks, 1 block of the mean
/// assert!(plan.fits());
/// println!("{plan}");
/// # Ok::<(), tessera::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explain {
    /// The nodes, a node before its inputs.
    pub nodes: Vec<ExplainNode>,
    /// Tasks of the whole run: the output's and every stage's.
    pub tasks: usize,
    /// Worker threads.
    pub threads: usize,
    /// Memory allowed to the run.
    pub allowed_mem: usize,
    /// Memory each task may use: what is left of the allowed memory once the output's shared
    /// buffers are set aside, divided by the threads.
    pub per_task: usize,
    /// The largest projection of a task, and the node whose task it is.
    pub largest_task: (usize, String),
    /// Bytes held by materialised nodes, all together.
    pub held: usize,
    /// Why the run would be refused, when it would be: the executor's own error message.
    pub refusal: Option<String>,
}

impl Explain {
    /// The plan of `root` as it would run with `opts` into memory, a `.npy` file or Zarr.
    pub fn new(root: &dyn PlanNode, opts: &ExecOptions) -> Explain {
        Self::with_sink(root, opts, 0, 0)
    }

    /// The plan of `root` as it would run with `opts` into an output that holds
    /// `sink_per_task` bytes in every task writing a block and `sink_shared` bytes in all (an
    /// HDF5 writer's chunk buffers and queue; see
    /// [`check_memory_with`](crate::exec::check_memory_with)).
    pub fn with_sink(
        root: &dyn PlanNode,
        opts: &ExecOptions,
        sink_per_task: usize,
        sink_shared: usize,
    ) -> Explain {
        Self::build(root, opts, sink_per_task, sink_shared, false)
    }

    /// The plan of `root` as it would run with `opts` into an output that stores its blocks
    /// piece by piece (uncompressed Zarr chunks in a directory, an unfiltered HDF5 dataset):
    /// an output node that computes its blocks in parts (a distance tile, strip by strip) is
    /// held to its parts, as [`check_memory_parts`](crate::exec::check_memory_parts) holds it.
    pub fn in_parts(root: &dyn PlanNode, opts: &ExecOptions) -> Explain {
        Self::build(root, opts, 0, 0, true)
    }

    fn build(
        root: &dyn PlanNode,
        opts: &ExecOptions,
        sink_per_task: usize,
        sink_shared: usize,
        parts: bool,
    ) -> Explain {
        let threads = opts.worker_threads();
        let mut walk = Walk {
            nodes: Vec::new(),
            seen: Vec::new(),
            stages: Vec::new(),
            parts,
        };
        walk.visit(root, 0, Role::Output, sink_per_task);
        let mut refusal = check(root, opts, sink_per_task, sink_shared, parts).err();
        // Each stage runs as a plan of its own when it is materialised, checked again then.
        for stage in &walk.stages {
            if refusal.is_some() {
                break;
            }
            refusal = check_memory(*stage, opts).err();
        }
        let nodes = walk.nodes;
        let tasks = nodes.iter().filter(|n| !n.repeat).map(|n| n.tasks).sum();
        let largest_task = nodes
            .iter()
            .filter(|n| matches!(n.role, Role::Output | Role::Stage))
            .fold((0, String::new()), |best, n| {
                if n.bytes > best.0 {
                    (n.bytes, n.op.clone())
                } else {
                    best
                }
            });
        let held = nodes
            .iter()
            .filter(|n| n.role == Role::Materialised && !n.repeat)
            .map(|n| n.bytes)
            .sum();
        Explain {
            nodes,
            tasks,
            threads,
            allowed_mem: opts.allowed_mem,
            per_task: opts.allowed_mem.saturating_sub(sink_shared) / threads,
            largest_task,
            held,
            refusal: refusal.map(|e| e.to_string()),
        }
    }

    /// Whether the run would pass the memory check.
    pub fn fits(&self) -> bool {
        self.refusal.is_none()
    }
}

/// The state of the walk over the tree.
struct Walk<'a> {
    nodes: Vec<ExplainNode>,
    /// Materialised nodes already shown (by address).
    seen: Vec<*const ()>,
    /// The inputs of the materialised nodes, each once.
    stages: Vec<&'a dyn PlanNode>,
    /// Whether the output stores blocks in parts ([`Explain::in_parts`]).
    parts: bool,
}

impl<'a> Walk<'a> {
    fn visit(&mut self, node: &'a dyn PlanNode, depth: usize, role: Role, sink_per_task: usize) {
        let g = node.grid();
        let task = || task_bytes(node).max(max_block_bytes(g, node.dtype()));
        let (bytes, tasks) = match role {
            Role::Output => (
                output_task_bytes(node, self.parts).saturating_add(sink_per_task),
                task_count(node),
            ),
            Role::Stage => (task(), task_count(node)),
            Role::Materialised | Role::Fused => (node.own_task_bytes(), 0),
        };
        let addr = node as *const dyn PlanNode as *const ();
        let repeat = role == Role::Materialised && self.seen.contains(&addr);
        if role == Role::Materialised && !repeat {
            self.seen.push(addr);
        }
        self.nodes.push(ExplainNode {
            depth,
            op: node.op(),
            dtype: node.dtype(),
            shape: g.shape().to_vec(),
            blocks_per_axis: g.blocks_per_axis(),
            chunk_shape: g.max_chunk_shape(),
            role,
            bytes,
            tasks,
            detail: node.describe(),
            repeat,
        });
        if repeat {
            return;
        }
        for input in node.inputs() {
            let role = if node.is_stage() {
                self.stages.push(input);
                Role::Stage
            } else if input.is_stage() {
                Role::Materialised
            } else {
                Role::Fused
            };
            self.visit(input, depth + 1, role, 0);
        }
    }
}

/// Tasks the executor runs for `node`'s blocks: one per block, or for a mirrored square grid
/// one per block on and above the diagonal.
fn task_count(node: &dyn PlanNode) -> usize {
    let g = node.grid();
    let n = g.nblocks();
    if node.mirrored() && g.ndim() == 2 && g.chunks()[0] == g.chunks()[1] {
        let k = g.chunks()[0].len();
        k * (k + 1) / 2
    } else {
        n
    }
}

fn fmt_dims(v: &[usize]) -> String {
    format!("{v:?}")
}

impl fmt::Display for Explain {
    /// The table (one line a node, inputs indented under their consumer), then the tasks,
    /// the memory and the verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "node", "dtype", "shape", "blocks", "chunk", "memory", "role",
        ];
        let rows: Vec<[String; 7]> = self
            .nodes
            .iter()
            .map(|n| {
                let blocks = if n.blocks_per_axis.len() > 1 {
                    let per: Vec<String> = n.blocks_per_axis.iter().map(usize::to_string).collect();
                    format!("{} ({})", n.nblocks(), per.join(" x "))
                } else {
                    n.nblocks().to_string()
                };
                let memory = match n.role {
                    Role::Output | Role::Stage => format!("{}/task", fmt_bytes(n.bytes)),
                    Role::Materialised => format!("{} held", fmt_bytes(n.bytes)),
                    Role::Fused => format!("+{}", fmt_bytes(n.bytes)),
                };
                let mut role = n.role.name().to_string();
                if n.tasks > 0 {
                    role.push_str(&format!(
                        ", {} task{}",
                        n.tasks,
                        if n.tasks == 1 { "" } else { "s" }
                    ));
                }
                if n.repeat {
                    role.push_str(", the same result as above (computed once)");
                } else if let Some(d) = &n.detail {
                    role.push_str(&format!("; {d}"));
                }
                [
                    format!("{:w$}{}", "", n.op, w = 2 * n.depth),
                    n.dtype.to_string(),
                    fmt_dims(&n.shape),
                    blocks,
                    fmt_dims(&n.chunk_shape),
                    memory,
                    role,
                ]
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let last = cells.len() - 1;
            for (k, cell) in cells.iter().enumerate() {
                if k == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:w$}  ", w = widths[k])?;
                }
            }
            Ok(())
        };
        line(f, &header)?;
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            line(f, &cells)?;
        }
        let output_tasks = self.nodes.first().map_or(0, |n| n.tasks);
        let stages: Vec<&ExplainNode> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Stage)
            .collect();
        write!(f, "tasks     {}: {output_tasks} for the output", self.tasks)?;
        if !stages.is_empty() {
            let stage_tasks: usize = stages.iter().map(|n| n.tasks).sum();
            write!(
                f,
                ", {stage_tasks} for {} materialised stage{}",
                stages.len(),
                if stages.len() == 1 { "" } else { "s" }
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "memory    {} allowed over {} thread{}: {} per task; largest task {} ({} B, {})",
            fmt_bytes(self.allowed_mem),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            fmt_bytes(self.per_task),
            fmt_bytes(self.largest_task.0),
            self.largest_task.0,
            self.largest_task.1
        )?;
        if self.held > 0 {
            write!(f, "; {} held by materialised results", fmt_bytes(self.held))?;
        }
        writeln!(f)?;
        match &self.refusal {
            None => writeln!(f, "fits      yes")?,
            Some(why) => writeln!(f, "fits      NO: {why}")?,
        }
        writeln!(
            f,
            "fused: runs inside the task above it, block by block, with no intermediate array\n\
             materialised: computed once, before the tasks that read it, and held in memory"
        )
    }
}
