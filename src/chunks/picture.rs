//! A text picture of a chunk grid, the terminal's answer to the drawing beside Dask's HTML repr:
//! blocks as cells whose sizes follow the chunk lengths.

use super::ChunkGrid;

/// Columns of the drawn box when none are given (the labels and notes come on top).
pub const PICTURE_COLS: usize = 40;
/// Lines of the drawn box when none are given.
pub const PICTURE_ROWS: usize = 12;

impl ChunkGrid {
    /// The grid drawn as text, at most [`PICTURE_COLS`] x [`PICTURE_ROWS`] characters for
    /// the box: see [`ChunkGrid::picture_with`].
    ///
    /// ```
    /// use tessera::chunks::{ChunkGrid, Chunks};
    /// // 10 x 7 in blocks of 4 x 3: the last row and the last column of blocks are smaller.
    /// // Lines run 11 high (the limit 12 less the top edge), so 1.1 lines per element: rows
    /// // of 4, 4 and 2 lines. Width follows at two columns per line: 15.4 columns for 7, so
    /// // cells of 7, 7 and 2 columns (a cell's right border included).
    /// let g = ChunkGrid::new(&[10, 7], &Chunks::from([4, 3]), 8)?;
    /// let expected = [
    ///     " _______________",
    ///     "|      |      | |",
    ///     "|      |      | |",
    ///     "|      |      | |",
    ///     "|______|______|_|",
    ///     "|      |      | | 10",
    ///     "|      |      | |",
    ///     "|      |      | |",
    ///     "|______|______|_|",
    ///     "|      |      | |",
    ///     "|______|______|_|",
    ///     "        7",
    /// ];
    /// assert_eq!(g.picture(), expected.join("\n") + "\n");
    /// # Ok::<(), tessera::Error>(())
    /// ```
    pub fn picture(&self) -> String {
        self.picture_with(PICTURE_COLS, PICTURE_ROWS)
    }

    /// The grid drawn as text in a box of at most `max_cols` characters by `max_rows` lines
    /// (at least 5 by 3), one cell per block, cell sizes proportional to the chunk lengths (a
    /// text line counts as two columns, and very elongated arrays are drawn less elongated
    /// than they are, so both sides stay readable). The length of the axis drawn down is
    /// written right of the box, the length of the axis drawn across below it.
    ///
    /// - 1-D: one row of cells.
    /// - 2-D: axis 0 down, axis 1 across, as NumPy prints a matrix.
    /// - 3-D: the face of axes 1 and 2, with a note of the blocks of axis 0 behind it.
    /// - Other ranks and arrays with an axis of length 0: no picture, one line saying why.
    ///
    /// When an axis has more blocks than cells fit, each cell drawn stands for several
    /// consecutive blocks, and a note says how many (`80 x 80 blocks; each cell drawn holds
    /// 4 x 4 of them`). Every line ends with a newline.
    ///
    /// ```
    /// use tessera::chunks::{ChunkGrid, Chunks};
    /// let g = ChunkGrid::new(&[10], &Chunks::Size(4), 8)?;
    /// assert_eq!(g.picture_with(13, 3), " ___________\n|____|____|_|\n     10\n");
    /// # Ok::<(), tessera::Error>(())
    /// ```
    pub fn picture_with(&self, max_cols: usize, max_rows: usize) -> String {
        let (max_cols, max_rows) = (max_cols.max(5), max_rows.max(3));
        let nd = self.ndim();
        if nd == 0 {
            return "no picture: a 0-d array is one element in one block\n".into();
        }
        if nd > 3 {
            return format!(
                "no picture for a {nd}-D array: {} blocks\n",
                join_x(&self.blocks_per_axis())
            );
        }
        if let Some(ax) = self.shape().iter().position(|&n| n == 0) {
            return format!(
                "no picture: axis {ax} has length 0 (an empty array, one empty block)\n"
            );
        }
        // The axis drawn across and the one drawn down (none for 1-D).
        let across = nd - 1;
        let down = (nd >= 2).then(|| nd - 2);
        // Target spans in columns and lines: the longer side fills its limit.
        let span_cols_max = (max_cols - 1) as f64;
        let span_rows_max = (max_rows - 1) as f64;
        let (span_cols, span_rows) = match down {
            None => (span_cols_max, 1.0),
            Some(ax) => {
                let aspect = squash(self.shape()[ax] as f64 / self.shape()[across] as f64);
                let (mut w, mut h) = (span_cols_max, span_cols_max * aspect / 2.0);
                if h > span_rows_max {
                    h = span_rows_max;
                    w = 2.0 * h / aspect;
                }
                (w, h)
            }
        };
        // A cell is at least two columns (a border and one blank) and one line: blocks that
        // do not fit the spans are drawn several to a cell.
        let (cols, per_col) = group(&self.chunks()[across], (span_cols as usize / 2).max(1));
        let (rows, per_row) = match down {
            Some(ax) => group(&self.chunks()[ax], (span_rows as usize).max(1)),
            None => (vec![1], 1),
        };
        let widths = cell_sizes(&cols, span_cols, max_cols - 1, 2);
        let heights = match down {
            Some(_) => cell_sizes(&rows, span_rows, max_rows - 1, 1),
            None => vec![1],
        };
        let mut out = draw(&widths, &heights);
        // Labels: the length down, right of the middle line; the length across, below.
        let total_cols: usize = widths.iter().sum::<usize>() + 1;
        if let Some(ax) = down {
            let mid = (out.len() / 2).max(1);
            out[mid].push_str(&format!(" {}", self.shape()[ax]));
        }
        let label = self.shape()[across].to_string();
        let pad = total_cols.saturating_sub(label.len()) / 2;
        out.push(format!("{:pad$}{label}", ""));
        // Notes.
        let drawn = &self.blocks_per_axis()[down.unwrap_or(across)..];
        if per_col > 1 || per_row > 1 {
            let per: Vec<usize> = match down {
                Some(_) => vec![per_row, per_col],
                None => vec![per_col],
            };
            out.push(format!(
                "{} blocks; each cell drawn holds {} of them",
                join_x(drawn),
                join_x(&per)
            ));
        }
        if nd == 3 {
            out.push(format!(
                "axes 1 and 2 drawn; axis 0 (length {}) runs into the page in {} block(s): {}",
                self.shape()[0],
                self.chunks()[0].len(),
                self.axis_summary(0)
            ));
        }
        let mut s = out.join("\n");
        s.push('\n');
        s
    }

    /// The block lengths along `axis` in a few words: `3 x 4 + 2` (three blocks of 4 and a
    /// last one of 2), `2 x 5`, or `4 blocks of 1 to 6` for irregular chunks.
    ///
    /// ```
    /// use tessera::chunks::{ChunkGrid, Chunks};
    /// let g = ChunkGrid::new(&[14, 6], &Chunks::from([4, 3]), 8)?;
    /// assert_eq!(g.axis_summary(0), "3 x 4 + 2");
    /// assert_eq!(g.axis_summary(1), "2 x 3");
    /// let g = ChunkGrid::from_chunks(&[9], vec![vec![1, 6, 2]])?;
    /// assert_eq!(g.axis_summary(0), "3 blocks of 1 to 6");
    /// # Ok::<(), tessera::Error>(())
    /// ```
    ///
    /// # Panics
    /// An `axis` that is not an axis of the grid.
    pub fn axis_summary(&self, axis: usize) -> String {
        let c = &self.chunks()[axis];
        let first = c.first().copied().unwrap_or(0);
        let (body, last) = c.split_at(c.len().saturating_sub(1));
        let last = last.first().copied().unwrap_or(0);
        if c.len() <= 1 || (body.iter().all(|&n| n == first) && last == first) {
            format!("{} x {first}", c.len())
        } else if body.iter().all(|&n| n == first) && last < first {
            format!("{} x {first} + {last}", body.len())
        } else {
            let min = c.iter().copied().min().unwrap_or(0);
            let max = c.iter().copied().max().unwrap_or(0);
            format!("{} blocks of {min} to {max}", c.len())
        }
    }
}

/// `a x b x c`.
fn join_x(v: &[usize]) -> String {
    v.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" x ")
}

/// Consecutive blocks merged so that at most `max` cells remain: the merged lengths and how
/// many blocks each cell holds (the last cell may hold fewer).
fn group(chunks: &[usize], max: usize) -> (Vec<usize>, usize) {
    let per = chunks.len().div_ceil(max.max(1)).max(1);
    (chunks.chunks(per).map(|g| g.iter().sum()).collect(), per)
}

/// A height-to-width ratio made milder beyond 3:1, so that a 2000 x 3 array is still a box
/// and not a line.
fn squash(ratio: f64) -> f64 {
    let r = if ratio >= 1.0 { ratio } else { 1.0 / ratio };
    let mild = if r <= 3.0 { r } else { 3.0 + (r / 3.0).ln() };
    if ratio >= 1.0 {
        mild
    } else {
        1.0 / mild
    }
}

/// Sizes of cells of `lengths` spread over about `span` characters: proportional, each at
/// least `min`, in all at most `max` (which must hold `lengths.len() * min`). Equal lengths
/// get equal sizes unless the limit forces a trim.
fn cell_sizes(lengths: &[usize], span: f64, max: usize, min: usize) -> Vec<usize> {
    let total: usize = lengths.iter().sum();
    let scale = span / total.max(1) as f64;
    let sized = |round: fn(f64) -> f64| -> Vec<usize> {
        lengths
            .iter()
            .map(|&n| (round(n as f64 * scale) as usize).max(min))
            .collect()
    };
    let mut sizes = sized(f64::round);
    if sizes.iter().sum::<usize>() > max {
        sizes = sized(f64::floor);
    }
    while sizes.iter().sum::<usize>() > max {
        let Some(big) = (0..sizes.len())
            .filter(|&i| sizes[i] > min)
            .max_by_key(|&i| sizes[i])
        else {
            break;
        };
        sizes[big] -= 1;
    }
    sizes
}

/// The box: a top edge, then for every line of cells `|` at the block borders and `_` along
/// the bottom line of each row of blocks.
fn draw(widths: &[usize], heights: &[usize]) -> Vec<String> {
    let width: usize = widths.iter().sum();
    let mut borders = vec![false; width + 1];
    let mut at = 0;
    borders[0] = true;
    for w in widths {
        at += w;
        borders[at] = true;
    }
    let mut lines = vec![format!(" {}", "_".repeat(width.saturating_sub(1)))];
    for &h in heights {
        for line in 0..h {
            let fill = if line + 1 == h { '_' } else { ' ' };
            lines.push(
                borders
                    .iter()
                    .map(|&b| if b { '|' } else { fill })
                    .collect(),
            );
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::Chunks;

    fn grid(shape: &[usize], chunks: &[usize]) -> ChunkGrid {
        ChunkGrid::new(shape, &Chunks::from(chunks), 8).unwrap()
    }

    #[test]
    fn ragged_blocks_are_drawn_smaller() {
        // 5 x 3 in blocks of 2 x 2 within 9 x 6: 5 lines for 5 rows (2, 2, 1), 6 columns for 3
        // (4 and 2).
        let want = [
            " _____",
            "|   | |",
            "|___|_|",
            "|   | | 5",
            "|___|_|",
            "|___|_|",
            "   3",
        ];
        assert_eq!(
            grid(&[5, 3], &[2, 2]).picture_with(9, 6),
            want.join("\n") + "\n"
        );
    }

    #[test]
    fn many_blocks_share_a_cell() {
        // 10 blocks, room for 4 cells: 3 blocks a cell, the last cell holding 1.
        let want = [
            " _______",
            "|_|_|_|_|",
            "   100",
            "10 blocks; each cell drawn holds 3 of them",
        ];
        assert_eq!(
            grid(&[100], &[10]).picture_with(9, 3),
            want.join("\n") + "\n"
        );
        let p = grid(&[800, 800], &[10, 10]).picture();
        assert!(
            p.ends_with("80 x 80 blocks; each cell drawn holds 8 x 8 of them\n"),
            "{p}"
        );
        // The box (labels aside) keeps to the limits; the label and the note come below.
        let boxed: Vec<&str> = p
            .lines()
            .take_while(|l| l.starts_with(['|', ' ']))
            .collect();
        assert!(boxed.len() <= PICTURE_ROWS + 1, "{p}");
        assert!(
            boxed.iter().all(|l| l
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ')
                .len()
                <= PICTURE_COLS),
            "{p}"
        );
    }

    #[test]
    fn other_ranks_and_empty_axes_get_a_note() {
        assert!(ChunkGrid::single(&[])
            .picture()
            .starts_with("no picture: a 0-d array"));
        let four = grid(&[2, 3, 4, 5], &[1, 3, 4, 5]).picture();
        assert_eq!(four, "no picture for a 4-D array: 2 x 1 x 1 x 1 blocks\n");
        let empty = grid(&[4, 0], &[2, 2]).picture();
        assert!(
            empty.starts_with("no picture: axis 1 has length 0"),
            "{empty}"
        );
    }

    #[test]
    fn three_d_draws_the_last_two_axes() {
        let p = grid(&[6, 5, 3], &[2, 2, 2]).picture_with(9, 6);
        let face = grid(&[5, 3], &[2, 2]).picture_with(9, 6);
        assert!(p.starts_with(&face), "{p}");
        assert!(p.ends_with("axis 0 (length 6) runs into the page in 3 block(s): 3 x 2\n"));
    }

    #[test]
    fn cells_stay_proportional_and_within_limits() {
        assert_eq!(cell_sizes(&[4, 4, 2], 11.0, 11, 1), vec![4, 4, 2]);
        // Rounding up would overflow: equal blocks stay equal.
        assert_eq!(cell_sizes(&[4, 4, 2], 39.0, 39, 2), vec![15, 15, 7]);
        // Minimum sizes win over proportions, and the total still fits.
        let s = cell_sizes(&[1000, 1, 1, 1], 8.0, 8, 2);
        assert_eq!(s, vec![2, 2, 2, 2]);
        assert!((squash(2.0) - 2.0).abs() < 1e-12);
        assert!(squash(1000.0) < 10.0 && squash(0.001) > 0.1);
    }
}
