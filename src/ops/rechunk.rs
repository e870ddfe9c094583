//! Rechunking: the same array on a new grid.
//!
//! Every node can produce any region, so a rechunked block asks its source for exactly its
//! region: source blocks are read (or computed) only where they overlap the new block, and a
//! task holds one new block plus the source pieces that make it. No intermediate store is
//! written (Rechunker's is not implemented): for an on-disk source whose chunks cut across the
//! new blocks, each task reads every source chunk its block overlaps.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::Result;
use crate::plan::{max_block_bytes, Block, Node, PlanNode};
use std::ops::Range;
use std::sync::Arc;

struct Rechunk<T: Element> {
    input: Arc<dyn Node<T>>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Rechunk<T> {
    fn op(&self) -> String {
        format!("rechunk({:?})", self.grid.max_chunk_shape())
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn describe(&self) -> Option<String> {
        Some(format!(
            "rechunk: each new block asks its input for the region it covers ({} blocks from {}); no intermediate array",
            self.grid.nblocks(),
            self.input.grid().nblocks()
        ))
    }
    fn own_task_bytes(&self) -> usize {
        // The new block, and the source pieces it is assembled from.
        2 * max_block_bytes(&self.grid, T::DTYPE)
    }
}

impl<T: Element> Node<T> for Rechunk<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        self.input.region(region)
    }
}

impl<T: Element> ChunkedArray<T> {
    /// The same values on a new chunk grid.
    ///
    /// # Errors
    /// Invalid chunks.
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// let x = ChunkedArray::<f32>::ones(&[10, 10], 3).unwrap().rechunk([5, 10]).unwrap();
    /// assert_eq!(x.chunks(), &[vec![5, 5], vec![10]]);
    /// ```
    pub fn rechunk(&self, chunks: impl Into<Chunks>) -> Result<Self> {
        let grid = ChunkGrid::new(self.shape(), &chunks.into(), T::DTYPE.size())?;
        if &grid == self.grid() {
            return Ok(self.clone());
        }
        Ok(Self::from_node(Arc::new(Rechunk {
            input: Arc::clone(self.node()),
            grid,
        })))
    }
}
