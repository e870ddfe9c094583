//! Parser of the expression language.
//!
//! The language is a subset of Python's expression syntax, evaluated later over chunked arrays:
//!
//! - literals: integers (`42`, `1_000_000`), floats (`1.5`, `.5`, `3.`, `1e-3`, `2.5E+10`),
//!   `True`, `False` and `None` (`inf` and `nan` are names, not literals);
//! - names (`x`), attributes (`x.T`, `np.sqrt`), calls with keyword arguments
//!   (`sum(x, axis=0)`, `x.sum(axis=0)`), indexing and slicing (`a[::2, 1:, None, ...]`);
//! - tuples in parentheses (`()`, `(1,)`, `(3, 4)`) and lists (`[0, 1]`);
//! - operators, from the loosest to the tightest binding:
//!   1. `or`
//!   2. `and`
//!   3. `not` (prefix)
//!   4. `<` `<=` `>` `>=` `==` `!=` (these cannot be chained: `a < b < c` is an error)
//!   5. `|`
//!   6. `^`
//!   7. `&`
//!   8. `+` `-`
//!   9. `*` `/` `//` `%` `@`
//!   10. `-` `+` `~` (prefix)
//!   11. `**` (right associative; its right operand may be a prefix `-`, `+` or `~`
//!       expression, so `2 ** -1` is valid and `-2 ** 2` is `-(2 ** 2)`)
//!   12. calls, indexes and attributes.
//!
//!   Binary operators other than `**` are left associative.
//!
//! Whitespace, newlines included, is insignificant. Trailing commas are allowed in calls,
//! tuples, lists and indexes. The whole input must be one expression: a bare `1, 2` is an
//! error, `(1, 2)` is a tuple.
//!
//! Expressions may nest at most [`MAX_NESTING`] brackets deep, and their syntax trees be at
//! most [`MAX_DEPTH`] levels deep, so that neither the parser nor code that walks the tree
//! can overflow the stack.
//!
//! Columns are 1-based and counted in characters from the start of the source, so in a
//! source of several lines they are positions in the whole text (newlines count as one
//! character); [`ParseError::render`] finds the line.

use std::fmt;

/// The maximum nesting of brackets: parentheses, and the brackets of lists, calls and indexes.
///
/// The parser recurses only into brackets, so this bounds the stack it uses (about 5 KiB per
/// level in a debug build, much less optimised). Chains of operators use no stack.
pub const MAX_NESTING: usize = 200;

/// The maximum depth of the syntax tree of a parsed expression: a leaf has depth 1.
///
/// Every [`Expr`] returned by [`parse`] is at most this deep, so code that walks the tree
/// recursively cannot overflow the stack. Long chains of left-associative operators
/// (`a + b + c + ...`) count one level per operator.
pub const MAX_DEPTH: usize = 1000;

/// A parsed expression: what it is and where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// The 1-based column, in characters, where the expression starts (including any opening
    /// parenthesis of a parenthesised operand, so `(a + b) * c` starts at column 1).
    pub col: usize,
}

impl Expr {
    /// An expression of `kind` starting at column `col`.
    #[must_use]
    pub fn new(kind: ExprKind, col: usize) -> Self {
        Self { kind, col }
    }
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// An integer literal such as `42` or `1_000_000`; it is never negative (`-1` is a
    /// [`UnaryOp::Neg`] of `1`, so `i64::MIN` cannot be written as a literal).
    Int(i64),
    /// A float literal such as `1.5`, `.5`, `3.` or `1e-3`.
    Float(f64),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A name such as `x` or `sqrt`.
    Name(String),
    /// A string literal, `'float32'` or `"int8"` (without its quotes): NumPy's way of naming a
    /// dtype.
    Str(String),
    /// A prefix operator applied to an operand: `-x`, `+x`, `~x`, `not x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// A binary operator: `a + b`, `a < b`, `a and b`, ...
    Binary {
        /// The operator.
        op: BinOp,
        /// The left operand.
        lhs: Box<Expr>,
        /// The right operand.
        rhs: Box<Expr>,
    },
    /// A call: `f(a, b, axis=0)` or a method call `x.sum(axis=0)`.
    ///
    /// The grammar allows calling any expression; the function is usually a
    /// [`ExprKind::Name`] or an [`ExprKind::Attr`].
    Call {
        /// What is called.
        func: Box<Expr>,
        /// The positional arguments, in order.
        args: Vec<Expr>,
        /// The keyword arguments, in order; they follow the positional ones and their names
        /// are distinct.
        kwargs: Vec<(String, Expr)>,
    },
    /// An attribute: `x.T`, `np.sqrt`.
    Attr {
        /// The expression whose attribute is taken.
        value: Box<Expr>,
        /// The name of the attribute.
        name: String,
    },
    /// An index: `a[::2, 1:, 3, None, ...]`.
    Index {
        /// The indexed expression.
        value: Box<Expr>,
        /// The comma-separated items between the brackets (at least one).
        items: Vec<IndexItem>,
    },
    /// A tuple in parentheses: `()`, `(1,)`, `(1, 2)`.
    Tuple(Vec<Expr>),
    /// A list: `[1, 2, 3]`.
    List(Vec<Expr>),
}

/// A prefix operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `+x`.
    Pos,
    /// `~x`.
    Invert,
    /// `not x`.
    Not,
}

impl UnaryOp {
    /// The operator as written in the source: `-`, `+`, `~` or `not`.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Pos => "+",
            UnaryOp::Invert => "~",
            UnaryOp::Not => "not",
        }
    }
}

impl fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a // b`.
    FloorDiv,
    /// `a % b`.
    Mod,
    /// `a ** b`.
    Pow,
    /// `a @ b`.
    MatMul,
    /// `a & b`.
    BitAnd,
    /// `a | b`.
    BitOr,
    /// `a ^ b`.
    BitXor,
    /// `a << b`.
    Shl,
    /// `a >> b`.
    Shr,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a and b`.
    And,
    /// `a or b`.
    Or,
}

impl BinOp {
    /// The operator as written in the source: `+`, `//`, `<=`, `and`, ...
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::MatMul => "@",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    /// Whether the operator is a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`).
    #[must_use]
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
        )
    }
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One comma-separated item of an index `a[...]`.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexItem {
    /// A single index: the `3` of `a[3]`.
    Index(Expr),
    /// A slice `start:stop:step`, each part optional: `::2`, `1:`, `:`.
    Slice {
        /// The start, if given.
        start: Option<Expr>,
        /// The stop, if given.
        stop: Option<Expr>,
        /// The step, if given.
        step: Option<Expr>,
    },
    /// A new axis of length 1: `None` as an item, as in `a[:, None]`.
    NewAxis,
    /// `...`: as many full slices as needed.
    Ellipsis,
}

/// Why a source is not a valid expression, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based column, in characters from the start of the source, of the problem; the
    /// column after the last non-blank character for an unexpected end of input.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    fn new(col: usize, message: impl Into<String>) -> Self {
        Self {
            col,
            message: message.into(),
        }
    }

    /// The line of `source` holding the error and a caret under its column.
    ///
    /// An error at the end of the input points just after the last character that is not
    /// whitespace. Tabs before the column are kept so that the caret lines up.
    ///
    /// ```
    /// use tessera::expr::parse::parse;
    ///
    /// let err = parse("a + * b").unwrap_err();
    /// assert_eq!(err.render("a + * b"), "a + * b\n    ^");
    /// ```
    #[must_use]
    pub fn render(&self, source: &str) -> String {
        let end = source.trim_end().chars().count();
        let idx = self.col.saturating_sub(1).min(end);
        let mut line_start = 0;
        for line in source.split('\n') {
            let len = line.chars().count();
            if idx <= line_start + len {
                let line = line.strip_suffix('\r').unwrap_or(line);
                let pad: String = line
                    .chars()
                    .take(idx - line_start)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                return format!("{line}\n{pad}^");
            }
            line_start += len + 1;
        }
        format!("{source}\n^")
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parse error at column {}: {}", self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses `source` as one expression.
///
/// # Errors
/// A [`ParseError`] at the first problem found from the left: an unexpected character or
/// token, an unexpected end of input, an unclosed or unmatched bracket, an invalid or
/// out-of-range number literal, a chained comparison, a positional argument after a keyword
/// argument, a repeated keyword argument, input left after a complete expression, or an
/// expression nested deeper than [`MAX_NESTING`] or [`MAX_DEPTH`].
///
/// ```
/// use tessera::expr::parse::{parse, BinOp, ExprKind};
///
/// let e = parse("sum(x ** 2, axis=0)").unwrap();
/// let ExprKind::Call { func, args, kwargs } = &e.kind else { panic!("not a call") };
/// assert_eq!(func.kind, ExprKind::Name("sum".into()));
/// assert!(matches!(args[0].kind, ExprKind::Binary { op: BinOp::Pow, .. }));
/// assert_eq!(kwargs[0].0, "axis");
/// assert_eq!(e.to_string(), "sum((x ** 2), axis=0)");
///
/// let err = parse("a < b < c").unwrap_err();
/// assert_eq!(err.col, 7);
/// ```
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(source)?;
    let node = parser.expression()?;
    parser.finish()?;
    Ok(*node.expr)
}

type PResult<T> = Result<T, ParseError>;

/// A token kind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Name,
    Str,
    And,
    Or,
    Not,
    True,
    False,
    NoneKw,
    Plus,
    Minus,
    Star,
    DoubleStar,
    Slash,
    DoubleSlash,
    Percent,
    At,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Assign,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Ellipsis,
    Eof,
}

/// A token: its kind, its text in the source and the column where it starts.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok,
    text: &'a str,
    col: usize,
}

/// Splits the source into tokens, one at a time. It is `Copy` so that the parser can look
/// one token further ahead on a copy.
#[derive(Debug, Clone, Copy)]
struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// 1-based column of the next character.
    col: usize,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_digit_or_underscore(c: char) -> bool {
    c.is_ascii_digit() || c == '_'
}

/// Whether `digits` (digits and underscores) is a valid group of digits: underscores only
/// between digits, and not empty unless `allow_empty`.
fn digits_ok(digits: &str, allow_empty: bool) -> bool {
    if digits.is_empty() {
        return allow_empty;
    }
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.ends_with(|c: char| c.is_ascii_digit())
        && !digits.contains("__")
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            col: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        self.col += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.bump();
        }
        found
    }

    /// Consumes characters while `pred` holds and returns them.
    fn eat_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
        &self.src[start..self.pos]
    }

    fn next_token(&mut self) -> PResult<Token<'a>> {
        self.eat_while(|c| c.is_ascii_whitespace());
        let start = *self;
        let Some(c) = self.bump() else {
            // The end of input is reported just after the last non-blank character, where the
            // rendered caret stands too.
            return Ok(Token {
                tok: Tok::Eof,
                text: "",
                col: self.src.trim_end().chars().count() + 1,
            });
        };
        let tok = match c {
            'a'..='z' | 'A'..='Z' | '_' => {
                self.eat_while(is_ident_char);
                match &self.src[start.pos..self.pos] {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "True" => Tok::True,
                    "False" => Tok::False,
                    "None" => Tok::NoneKw,
                    _ => Tok::Name,
                }
            }
            '\'' | '"' => {
                self.eat_while(|ch| ch != c && ch != '\n');
                if !self.eat(c) {
                    return Err(ParseError::new(
                        start.col,
                        format!("string literal never closed: expected a closing {c}"),
                    ));
                }
                Tok::Str
            }
            '0'..='9' => {
                *self = start;
                return self.number();
            }
            '.' if self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                *self = start;
                return self.number();
            }
            '.' if self.peek() == Some('.') && self.peek_second() == Some('.') => {
                self.bump();
                self.bump();
                Tok::Ellipsis
            }
            '.' => Tok::Dot,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' if self.eat('*') => Tok::DoubleStar,
            '*' => Tok::Star,
            '/' if self.eat('/') => Tok::DoubleSlash,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '@' => Tok::At,
            '&' => Tok::Amp,
            '|' => Tok::Pipe,
            '^' => Tok::Caret,
            '~' => Tok::Tilde,
            '<' if self.eat('<') => Tok::Shl,
            '<' if self.eat('=') => Tok::Le,
            '<' => Tok::Lt,
            '>' if self.eat('>') => Tok::Shr,
            '>' if self.eat('=') => Tok::Ge,
            '>' => Tok::Gt,
            '=' if self.eat('=') => Tok::EqEq,
            '=' => Tok::Assign,
            '!' if self.eat('=') => Tok::Ne,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            ':' => Tok::Colon,
            _ => {
                return Err(ParseError::new(
                    start.col,
                    format!("unexpected character '{}'", c.escape_debug()),
                ))
            }
        };
        Ok(Token {
            tok,
            text: &self.src[start.pos..self.pos],
            col: start.col,
        })
    }

    /// Lexes a number literal starting at the current position (a digit, or a `.` followed
    /// by a digit).
    fn number(&mut self) -> PResult<Token<'a>> {
        let (start, col) = (self.pos, self.col);
        let int = self.eat_while(is_digit_or_underscore);
        let frac = self
            .eat('.')
            .then(|| self.eat_while(is_digit_or_underscore));
        let exp = if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            let sign_start = self.pos;
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            let sign = &self.src[sign_start..self.pos];
            Some((sign, self.eat_while(is_digit_or_underscore)))
        } else {
            None
        };
        // Letters, digits, underscores or dots glued to the literal make it invalid
        // (`1.2.3`, `1x`, `0x1F`); take them in so that the message shows them.
        let glued = !self.eat_while(|c| is_ident_char(c) || c == '.').is_empty();
        let text = &self.src[start..self.pos];
        let invalid =
            |why: &str| ParseError::new(col, format!("invalid number literal '{text}'{why}"));
        if glued {
            return Err(invalid(""));
        }
        if exp.is_some_and(|(_, digits)| digits.is_empty()) {
            return Err(invalid(": the exponent has no digits"));
        }
        let groups_ok = digits_ok(int, frac.is_some())
            && frac.is_none_or(|f| digits_ok(f, true))
            && exp.is_none_or(|(_, e)| digits_ok(e, false));
        if !groups_ok {
            return Err(invalid(": underscores are only allowed between digits"));
        }
        let clean = |s: &str| {
            if s.is_empty() {
                "0".to_owned()
            } else {
                s.replace('_', "")
            }
        };
        let tok = if frac.is_none() && exp.is_none() {
            let digits = clean(int);
            if digits.len() > 1 && digits.starts_with('0') && digits.bytes().any(|b| b != b'0') {
                return Err(invalid(": leading zeros are not allowed"));
            }
            let value = digits.parse::<i64>().map_err(|_| {
                ParseError::new(
                    col,
                    format!(
                        "integer literal {text} is out of range (the largest integer is {})",
                        i64::MAX
                    ),
                )
            })?;
            Tok::Int(value)
        } else {
            let (sign, e) = exp.unwrap_or(("", ""));
            let literal = format!(
                "{}.{}e{sign}{}",
                clean(int),
                clean(frac.unwrap_or("")),
                clean(e)
            );
            Tok::Float(literal.parse::<f64>().map_err(|_| invalid(""))?)
        };
        Ok(Token { tok, text, col })
    }
}

/// An expression being built and the depth of its tree.
///
/// The expression is boxed, as it will be in its parent, so that the results passed around
/// by the parser are small: the stack used per level of brackets stays small even in debug
/// builds.
struct Node {
    expr: Box<Expr>,
    depth: usize,
}

/// A node of `kind` at column `col` whose deepest child has depth `depth - 1`; an error at
/// column `at` if it is deeper than [`MAX_DEPTH`].
fn node(kind: ExprKind, col: usize, depth: usize, at: usize) -> PResult<Node> {
    if depth > MAX_DEPTH {
        return Err(ParseError::new(
            at,
            format!("expression nested too deeply (its syntax tree is more than {MAX_DEPTH} levels deep)"),
        ));
    }
    Ok(Node {
        expr: Box::new(Expr::new(kind, col)),
        depth,
    })
}

fn unary_node(op: UnaryOp, operand: Node, col: usize) -> PResult<Node> {
    let depth = operand.depth + 1;
    let kind = ExprKind::Unary {
        op,
        operand: operand.expr,
    };
    node(kind, col, depth, col)
}

fn binary_node(op: BinOp, lhs: Node, rhs: Node, col: usize, op_col: usize) -> PResult<Node> {
    let depth = lhs.depth.max(rhs.depth) + 1;
    let kind = ExprKind::Binary {
        op,
        lhs: lhs.expr,
        rhs: rhs.expr,
    };
    node(kind, col, depth, op_col)
}

/// The expressions of `nodes` and the depth of the deepest (0 if there are none).
fn unzip(nodes: Vec<Node>) -> (Vec<Expr>, usize) {
    let depth = nodes.iter().map(|n| n.depth).max().unwrap_or(0);
    (nodes.into_iter().map(|n| *n.expr).collect(), depth)
}

/// Binding powers of the operators, loosest first.
mod power {
    pub(super) const OR: u8 = 1;
    pub(super) const AND: u8 = 2;
    pub(super) const NOT: u8 = 3;
    pub(super) const COMPARISON: u8 = 4;
    pub(super) const BIT_OR: u8 = 5;
    pub(super) const BIT_XOR: u8 = 6;
    pub(super) const BIT_AND: u8 = 7;
    pub(super) const SHIFT: u8 = 8;
    pub(super) const ADD: u8 = 9;
    pub(super) const MUL: u8 = 10;
    pub(super) const PREFIX: u8 = 11;
    pub(super) const POW: u8 = 12;
}

/// The binary operator of `tok` and its binding power.
fn binary_op(tok: Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Or => (BinOp::Or, power::OR),
        Tok::And => (BinOp::And, power::AND),
        Tok::Lt => (BinOp::Lt, power::COMPARISON),
        Tok::Le => (BinOp::Le, power::COMPARISON),
        Tok::Gt => (BinOp::Gt, power::COMPARISON),
        Tok::Ge => (BinOp::Ge, power::COMPARISON),
        Tok::EqEq => (BinOp::Eq, power::COMPARISON),
        Tok::Ne => (BinOp::Ne, power::COMPARISON),
        Tok::Pipe => (BinOp::BitOr, power::BIT_OR),
        Tok::Caret => (BinOp::BitXor, power::BIT_XOR),
        Tok::Amp => (BinOp::BitAnd, power::BIT_AND),
        Tok::Shl => (BinOp::Shl, power::SHIFT),
        Tok::Shr => (BinOp::Shr, power::SHIFT),
        Tok::Plus => (BinOp::Add, power::ADD),
        Tok::Minus => (BinOp::Sub, power::ADD),
        Tok::Star => (BinOp::Mul, power::MUL),
        Tok::Slash => (BinOp::Div, power::MUL),
        Tok::DoubleSlash => (BinOp::FloorDiv, power::MUL),
        Tok::Percent => (BinOp::Mod, power::MUL),
        Tok::At => (BinOp::MatMul, power::MUL),
        Tok::DoubleStar => (BinOp::Pow, power::POW),
        _ => return None,
    })
}

/// An operand of the operators of [`Parser::expression`].
struct Operand {
    node: Node,
    /// The column where the operand starts, its opening parenthesis included.
    start: usize,
    /// Whether it is a comparison made by the operators of this expression (not in
    /// parentheses), which cannot be the left operand of another comparison.
    comparison: bool,
}

/// An operator of [`Parser::expression`] waiting for its right operand.
enum Pending {
    /// A prefix operator at column `col`.
    Prefix { op: UnaryOp, col: usize },
    /// A binary operator of binding power `power` at column `col`, and its left operand.
    Binary {
        lhs: Operand,
        op: BinOp,
        power: u8,
        col: usize,
    },
}

impl Pending {
    /// The binding power of the operator.
    fn power(&self) -> u8 {
        match self {
            Pending::Prefix {
                op: UnaryOp::Not, ..
            } => power::NOT,
            Pending::Prefix { .. } => power::PREFIX,
            Pending::Binary { power, .. } => *power,
        }
    }

    /// Applies the operator to its right operand `rhs`.
    fn apply(self, rhs: Operand) -> PResult<Operand> {
        Ok(match self {
            Pending::Prefix { op, col } => Operand {
                node: unary_node(op, rhs.node, col)?,
                start: col,
                comparison: false,
            },
            Pending::Binary { lhs, op, col, .. } => Operand {
                node: binary_node(op, lhs.node, rhs.node, lhs.start, col)?,
                start: lhs.start,
                comparison: op.is_comparison(),
            },
        })
    }
}

/// A recursive-descent parser with one token of lookahead (two for keyword arguments).
///
/// Operators are parsed without recursion, with a stack of pending operators (see
/// [`Parser::expression`]); the parser only recurses into brackets, which [`MAX_NESTING`]
/// limits, so that its stack stays small.
struct Parser<'a> {
    lexer: Lexer<'a>,
    /// The current token, not consumed yet.
    tok: Token<'a>,
    /// The opening brackets not closed yet, innermost last.
    open: Vec<Token<'a>>,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str) -> PResult<Self> {
        let mut lexer = Lexer::new(source);
        let tok = lexer.next_token()?;
        Ok(Self {
            lexer,
            tok,
            open: Vec::new(),
        })
    }

    /// Consumes the current token and returns it.
    fn advance(&mut self) -> PResult<Token<'a>> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn at(&self, tok: Tok) -> bool {
        self.tok.tok == tok
    }

    /// Whether the token after the current one is `tok`.
    fn next_is(&self, tok: Tok) -> bool {
        let mut lexer = self.lexer;
        matches!(lexer.next_token(), Ok(t) if t.tok == tok)
    }

    /// The error for an unexpected current token where `expected` was expected.
    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.tok;
        match (t.tok, self.open.last()) {
            (Tok::Eof, Some(open)) => {
                ParseError::new(open.col, format!("'{}' is never closed", open.text))
            }
            (Tok::Eof, None) => ParseError::new(
                t.col,
                format!("unexpected end of input, expected {expected}"),
            ),
            (Tok::RParen | Tok::RBracket, None) => {
                ParseError::new(t.col, format!("unmatched '{}'", t.text))
            }
            (Tok::RParen, Some(open)) if open.tok != Tok::LParen => mismatched(t, open),
            (Tok::RBracket, Some(open)) if open.tok != Tok::LBracket => mismatched(t, open),
            _ => ParseError::new(t.col, format!("expected {expected}, found '{}'", t.text)),
        }
    }

    /// Consumes the current token, an opening bracket.
    fn open_bracket(&mut self) -> PResult<()> {
        if self.open.len() == MAX_NESTING {
            return Err(ParseError::new(
                self.tok.col,
                format!(
                    "expression nested too deeply (more than {MAX_NESTING} levels of brackets)"
                ),
            ));
        }
        let open = self.advance()?;
        self.open.push(open);
        Ok(())
    }

    /// Parses `item (',' item)* ','?` up to and including the bracket `close` that ends the
    /// innermost open bracket, calling `item` to parse each item; returns whether there was a
    /// comma.
    fn items(
        &mut self,
        close: Tok,
        mut item: impl FnMut(&mut Self) -> PResult<()>,
    ) -> PResult<bool> {
        let mut comma = false;
        while !self.at(close) {
            item(self)?;
            if self.at(Tok::Comma) {
                self.advance()?;
                comma = true;
            } else if !self.at(close) {
                let expected = if close == Tok::RParen {
                    "',' or ')'"
                } else {
                    "',' or ']'"
                };
                return Err(self.unexpected(expected));
            }
        }
        self.advance()?;
        self.open.pop();
        Ok(comma)
    }

    /// Checks that the whole input has been consumed.
    fn finish(&self) -> PResult<()> {
        let t = self.tok;
        match t.tok {
            Tok::Eof => Ok(()),
            Tok::Comma => Err(ParseError::new(
                t.col,
                "unexpected ',' after the end of the expression (write a tuple in parentheses: `(a, b)`)",
            )),
            _ => Err(ParseError::new(
                t.col,
                format!("unexpected '{}' after the end of the expression", t.text),
            )),
        }
    }

    /// An expression: primaries joined by operators.
    ///
    /// Operators wait on a stack for their right operand; after each primary, the pending
    /// operators that bind at least as tightly as the next operator (more tightly, if the next
    /// one is the right-associative `**`) are applied.
    fn expression(&mut self) -> PResult<Node> {
        let mut pending: Vec<Pending> = Vec::new();
        loop {
            while let Some(op) = self.prefix_op(pending.last()) {
                let col = self.advance()?.col;
                pending.push(Pending::Prefix { op, col });
            }
            let start = self.tok.col;
            let mut operand = Operand {
                node: self.primary()?,
                start,
                comparison: false,
            };
            let next = binary_op(self.tok.tok);
            // 0 at the end of the expression, to apply every pending operator.
            let next_power = next.map_or(0, |(_, p)| p);
            let applies = |top: &mut Pending| {
                let p = top.power();
                p > next_power || (p == next_power && next_power != power::POW)
            };
            while let Some(top) = pending.pop_if(applies) {
                operand = top.apply(operand)?;
            }
            let Some((op, power)) = next else {
                return Ok(operand.node);
            };
            if operand.comparison && power == power::COMPARISON {
                return Err(ParseError::new(
                    self.tok.col,
                    "chained comparisons are not supported, use `(a < b) & (b < c)`",
                ));
            }
            let col = self.advance()?.col;
            pending.push(Pending::Binary {
                lhs: operand,
                op,
                power,
                col,
            });
        }
    }

    /// The prefix operator at the current token, if any, after the operator `before`: `not`
    /// binds more loosely than the other operators, so it can only follow `and`, `or` or
    /// `not`, or start the expression.
    fn prefix_op(&self, before: Option<&Pending>) -> Option<UnaryOp> {
        match self.tok.tok {
            Tok::Minus => Some(UnaryOp::Neg),
            Tok::Plus => Some(UnaryOp::Pos),
            Tok::Tilde => Some(UnaryOp::Invert),
            Tok::Not if before.is_none_or(|op| op.power() <= power::NOT) => Some(UnaryOp::Not),
            _ => None,
        }
    }

    /// An atom followed by any number of calls, indexes and attributes.
    fn primary(&mut self) -> PResult<Node> {
        let start = self.tok.col;
        let mut value = match self.tok.tok {
            Tok::LParen => self.parenthesized()?,
            Tok::LBracket => self.list()?,
            _ => self.atom()?,
        };
        loop {
            value = match self.tok.tok {
                Tok::LParen => self.call(value, start)?,
                Tok::LBracket => self.index(value, start)?,
                Tok::Dot => self.attribute(value, start)?,
                _ => return Ok(value),
            };
        }
    }

    /// A literal or a name.
    fn atom(&mut self) -> PResult<Node> {
        let t = self.tok;
        let kind = match t.tok {
            Tok::Int(v) => ExprKind::Int(v),
            Tok::Float(v) => ExprKind::Float(v),
            Tok::True => ExprKind::Bool(true),
            Tok::False => ExprKind::Bool(false),
            Tok::NoneKw => ExprKind::None,
            Tok::Name => ExprKind::Name(t.text.to_owned()),
            Tok::Str => ExprKind::Str(t.text[1..t.text.len() - 1].to_owned()),
            _ => return Err(self.unexpected("an expression")),
        };
        self.advance()?;
        node(kind, t.col, 1, t.col)
    }

    /// `(expr)`, or a tuple `()`, `(expr,)`, `(expr, expr, ...)`.
    fn parenthesized(&mut self) -> PResult<Node> {
        let col = self.tok.col;
        self.open_bracket()?;
        let mut items = Vec::new();
        let comma = self.items(Tok::RParen, |p| {
            items.push(p.expression()?);
            Ok(())
        })?;
        if items.len() == 1 && !comma {
            if let Some(inner) = items.pop() {
                return Ok(inner);
            }
        }
        let (items, depth) = unzip(items);
        node(ExprKind::Tuple(items), col, depth + 1, col)
    }

    /// `[expr, ...]`
    fn list(&mut self) -> PResult<Node> {
        let col = self.tok.col;
        self.open_bracket()?;
        let mut items = Vec::new();
        self.items(Tok::RBracket, |p| {
            items.push(p.expression()?);
            Ok(())
        })?;
        let (items, depth) = unzip(items);
        node(ExprKind::List(items), col, depth + 1, col)
    }

    /// `.name` after `value`, which starts at column `start`.
    fn attribute(&mut self, value: Node, start: usize) -> PResult<Node> {
        let dot = self.advance()?.col;
        if !self.at(Tok::Name) {
            return Err(self.unexpected("an attribute name"));
        }
        let name = self.advance()?.text.to_owned();
        let depth = value.depth + 1;
        let kind = ExprKind::Attr {
            value: value.expr,
            name,
        };
        node(kind, start, depth, dot)
    }

    /// The arguments of a call of `func`, which starts at column `start`.
    fn call(&mut self, func: Node, start: usize) -> PResult<Node> {
        let paren = self.tok.col;
        self.open_bracket()?;
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        self.items(Tok::RParen, |p| p.argument(&mut args, &mut kwargs))?;
        call_node(func, args, kwargs, start, paren)
    }

    /// One argument of a call, `expr` or `name=expr`, added to `args` or `kwargs`.
    fn argument(&mut self, args: &mut Vec<Node>, kwargs: &mut Vec<(&'a str, Node)>) -> PResult<()> {
        let col = self.tok.col;
        if !(self.at(Tok::Name) && self.next_is(Tok::Assign)) {
            if !kwargs.is_empty() {
                return Err(ParseError::new(
                    col,
                    "positional argument follows keyword argument",
                ));
            }
            args.push(self.expression()?);
            return Ok(());
        }
        let name = self.advance()?.text;
        if kwargs.iter().any(|&(k, _)| k == name) {
            return Err(ParseError::new(
                col,
                format!("keyword argument '{name}' is repeated"),
            ));
        }
        self.advance()?;
        kwargs.push((name, self.expression()?));
        Ok(())
    }

    /// The items of an index of `value`, which starts at column `start`.
    fn index(&mut self, value: Node, start: usize) -> PResult<Node> {
        let bracket = self.tok.col;
        self.open_bracket()?;
        if self.at(Tok::RBracket) {
            return Err(self.unexpected("an index"));
        }
        let mut items = Vec::new();
        self.items(Tok::RBracket, |p| {
            let item = p.index_item()?;
            items.push(item);
            Ok(())
        })?;
        index_node(value, items, start, bracket)
    }

    /// One item of an index.
    fn index_item(&mut self) -> PResult<Item> {
        if self.at(Tok::Ellipsis) {
            self.advance()?;
            return Ok(Item::Ellipsis);
        }
        let start = self.slice_part()?;
        if !self.at(Tok::Colon) {
            return match start {
                Some(index) => Ok(Item::Index(index)),
                None => Err(self.unexpected("an index")),
            };
        }
        self.advance()?;
        let stop = self.slice_part()?;
        let step = if self.at(Tok::Colon) {
            self.advance()?;
            self.slice_part()?
        } else {
            None
        };
        Ok(Item::Slice([start, stop, step]))
    }

    /// The start, stop or step of a slice, if there is one.
    fn slice_part(&mut self) -> PResult<Option<Node>> {
        if matches!(self.tok.tok, Tok::Colon | Tok::Comma | Tok::RBracket) {
            Ok(None)
        } else {
            self.expression().map(Some)
        }
    }
}

/// An item of an index being parsed: a small stand-in for an [`IndexItem`].
enum Item {
    Ellipsis,
    Index(Node),
    /// The start, stop and step.
    Slice([Option<Node>; 3]),
}

/// The call of `func`, which starts at column `start`, with its opening parenthesis at
/// column `paren`.
fn call_node(
    func: Node,
    args: Vec<Node>,
    kwargs: Vec<(&str, Node)>,
    start: usize,
    paren: usize,
) -> PResult<Node> {
    let (args, args_depth) = unzip(args);
    let kwargs_depth = kwargs.iter().map(|(_, n)| n.depth).max().unwrap_or(0);
    let kwargs = kwargs
        .into_iter()
        .map(|(name, n)| (name.to_owned(), *n.expr))
        .collect();
    let depth = func.depth.max(args_depth).max(kwargs_depth) + 1;
    let kind = ExprKind::Call {
        func: func.expr,
        args,
        kwargs,
    };
    node(kind, start, depth, paren)
}

/// The index of `value`, which starts at column `start`, with its opening bracket at column
/// `bracket`.
fn index_node(value: Node, items: Vec<Item>, start: usize, bracket: usize) -> PResult<Node> {
    let mut depth = value.depth;
    let mut expr = |n: Node| {
        depth = depth.max(n.depth);
        *n.expr
    };
    let items = items
        .into_iter()
        .map(|item| match item {
            Item::Ellipsis => IndexItem::Ellipsis,
            Item::Index(n) if matches!(n.expr.kind, ExprKind::None) => IndexItem::NewAxis,
            Item::Index(n) => IndexItem::Index(expr(n)),
            Item::Slice([start, stop, step]) => IndexItem::Slice {
                start: start.map(&mut expr),
                stop: stop.map(&mut expr),
                step: step.map(&mut expr),
            },
        })
        .collect();
    let kind = ExprKind::Index {
        value: value.expr,
        items,
    };
    node(kind, start, depth + 1, bracket)
}

/// The error for the closing bracket `close` that does not match the opening one `open`.
fn mismatched(close: Token<'_>, open: &Token<'_>) -> ParseError {
    ParseError::new(
        close.col,
        format!(
            "closing '{}' does not match '{}' at column {}",
            close.text, open.text, open.col
        ),
    )
}

/// Writes `items` separated by `, `.
fn comma_separated<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Writes a float so that it parses back to the same value.
fn fmt_float(v: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if v.is_nan() {
        f.write_str("nan")
    } else if v.is_infinite() {
        // `inf` would parse back as a name; `1e999` is the literal that overflows to it.
        f.write_str(if v > 0.0 { "1e999" } else { "(-1e999)" })
    } else if v.is_sign_negative() {
        write!(f, "({v:?})")
    } else {
        write!(f, "{v:?}")
    }
}

/// Prints the expression back in a fully parenthesised form: every unary and binary operation
/// is in parentheses, as in `((-x) + (y * 2))`.
///
/// The text parses back to the same tree (columns aside) if the tree is at most
/// [`MAX_NESTING`] levels deep: deeper ones print with more nested parentheses than [`parse`]
/// accepts.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(v) if *v < 0 => write!(f, "({v})"),
            ExprKind::Int(v) => write!(f, "{v}"),
            ExprKind::Float(v) => fmt_float(*v, f),
            ExprKind::Bool(true) => f.write_str("True"),
            ExprKind::Bool(false) => f.write_str("False"),
            ExprKind::None => f.write_str("None"),
            ExprKind::Name(name) => f.write_str(name),
            ExprKind::Str(text) if text.contains('\'') => write!(f, "\"{text}\""),
            ExprKind::Str(text) => write!(f, "'{text}'"),
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => write!(f, "(not {operand})"),
            ExprKind::Unary { op, operand } => write!(f, "({op}{operand})"),
            ExprKind::Binary { op, lhs, rhs } => write!(f, "({lhs} {op} {rhs})"),
            ExprKind::Call { func, args, kwargs } => {
                write!(f, "{func}(")?;
                comma_separated(f, args)?;
                for (i, (name, value)) in kwargs.iter().enumerate() {
                    if i > 0 || !args.is_empty() {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}={value}")?;
                }
                f.write_str(")")
            }
            // `1.real` would not lex.
            ExprKind::Attr { value, name } => match value.kind {
                ExprKind::Int(_) | ExprKind::Float(_) => write!(f, "({value}).{name}"),
                _ => write!(f, "{value}.{name}"),
            },
            ExprKind::Index { value, items } => {
                write!(f, "{value}[")?;
                comma_separated(f, items)?;
                f.write_str("]")
            }
            ExprKind::Tuple(items) => match items.as_slice() {
                [item] => write!(f, "({item},)"),
                _ => {
                    f.write_str("(")?;
                    comma_separated(f, items)?;
                    f.write_str(")")
                }
            },
            ExprKind::List(items) => {
                f.write_str("[")?;
                comma_separated(f, items)?;
                f.write_str("]")
            }
        }
    }
}

/// Prints an index item as in the source: `3`, `1:5:-1`, `::2`, `None`, `...`.
impl fmt::Display for IndexItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexItem::Index(e) => write!(f, "{e}"),
            IndexItem::Slice { start, stop, step } => {
                if let Some(start) = start {
                    write!(f, "{start}")?;
                }
                f.write_str(":")?;
                if let Some(stop) = stop {
                    write!(f, "{stop}")?;
                }
                if let Some(step) = step {
                    write!(f, ":{step}")?;
                }
                Ok(())
            }
            IndexItem::NewAxis => f.write_str("None"),
            IndexItem::Ellipsis => f.write_str("..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(source: &str) -> Expr {
        parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}\n{}", e.render(source)))
    }

    /// The fully parenthesised form of `source`.
    fn shown(source: &str) -> String {
        parsed(source).to_string()
    }

    /// The column and message of the error of `source`.
    fn error(source: &str) -> (usize, String) {
        match parse(source) {
            Ok(_) => panic!(
                "{:?}... parsed",
                source.chars().take(60).collect::<String>()
            ),
            Err(e) => (e.col, e.message),
        }
    }

    fn assert_error(source: &str, col: usize, message: &str) {
        let (c, m) = error(source);
        let shown: String = source.chars().take(60).collect();
        assert_eq!((c, m.as_str()), (col, message), "error of {shown:?}...");
    }

    fn e(kind: ExprKind, col: usize) -> Expr {
        Expr::new(kind, col)
    }

    fn name(n: &str, col: usize) -> Expr {
        e(ExprKind::Name(n.into()), col)
    }

    fn int(v: i64, col: usize) -> Expr {
        e(ExprKind::Int(v), col)
    }

    /// `expr` with every column set to 0, to compare trees whatever their layout.
    fn erase(expr: &Expr) -> Expr {
        let b = |x: &Expr| Box::new(erase(x));
        let all = |xs: &[Expr]| xs.iter().map(erase).collect::<Vec<_>>();
        let kind = match &expr.kind {
            ExprKind::Unary { op, operand } => ExprKind::Unary {
                op: *op,
                operand: b(operand),
            },
            ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
                op: *op,
                lhs: b(lhs),
                rhs: b(rhs),
            },
            ExprKind::Call { func, args, kwargs } => ExprKind::Call {
                func: b(func),
                args: all(args),
                kwargs: kwargs.iter().map(|(k, v)| (k.clone(), erase(v))).collect(),
            },
            ExprKind::Attr { value, name } => ExprKind::Attr {
                value: b(value),
                name: name.clone(),
            },
            ExprKind::Index { value, items } => ExprKind::Index {
                value: b(value),
                items: items
                    .iter()
                    .map(|item| match item {
                        IndexItem::Index(x) => IndexItem::Index(erase(x)),
                        IndexItem::Slice { start, stop, step } => IndexItem::Slice {
                            start: start.as_ref().map(erase),
                            stop: stop.as_ref().map(erase),
                            step: step.as_ref().map(erase),
                        },
                        other => other.clone(),
                    })
                    .collect(),
            },
            ExprKind::Tuple(items) => ExprKind::Tuple(all(items)),
            ExprKind::List(items) => ExprKind::List(all(items)),
            leaf => leaf.clone(),
        };
        Expr::new(kind, 0)
    }

    #[test]
    fn precedence() {
        assert_eq!(shown("1 + 2 * 3 ** 2"), "(1 + (2 * (3 ** 2)))");
        assert_eq!(shown("x.astype(\"f4\")"), "x.astype('f4')");
        assert_eq!(shown("f(\"it's\")"), "f(\"it's\")");
        assert_eq!(shown("-2 ** 2"), "(-(2 ** 2))");
        assert_eq!(shown("2 ** -1"), "(2 ** (-1))");
        assert_eq!(shown("(-2) ** 2"), "((-2) ** 2)");
        assert_eq!(shown("a | b & c"), "(a | (b & c))");
        assert_eq!(shown("a & b | c ^ d"), "((a & b) | (c ^ d))");
        assert_eq!(shown("not a == b"), "(not (a == b))");
        assert_eq!(shown("a < b and c"), "((a < b) and c)");
        assert_eq!(shown("a or b and not c"), "(a or (b and (not c)))");
        assert_eq!(shown("not a or b"), "((not a) or b)");
        assert_eq!(shown("a - b - c"), "((a - b) - c)");
        assert_eq!(shown("a / b // c % d @ e"), "((((a / b) // c) % d) @ e)");
        assert_eq!(shown("-a * ~b"), "((-a) * (~b))");
        assert_eq!(shown("a + b < c * d"), "((a + b) < (c * d))");
        assert_eq!(shown("(a < b) & (b < c)"), "((a < b) & (b < c))");
        assert_eq!(shown("- - +x"), "(-(-(+x)))");
        assert_eq!(shown("not not a"), "(not (not a))");
        assert_eq!(shown("x.T ** 2"), "(x.T ** 2)");
        assert_eq!(shown("-x[0] ** 2"), "(-(x[0] ** 2))");
        assert_eq!(shown("a != b or c >= d"), "((a != b) or (c >= d))");
    }

    #[test]
    fn pow_is_right_associative() {
        assert_eq!(shown("2 ** 3 ** 2"), "(2 ** (3 ** 2))");
        assert_eq!(shown("2 ** -3 ** 2"), "(2 ** (-(3 ** 2)))");
        assert_eq!(shown("a ** b * c"), "((a ** b) * c)");
    }

    #[test]
    fn columns() {
        let expr = parsed("(a + b) * c");
        assert_eq!(expr.col, 1);
        let ExprKind::Binary { lhs, rhs, .. } = &expr.kind else {
            panic!("{expr:?}")
        };
        assert_eq!((lhs.col, rhs.col), (2, 11));
        let expr = parsed("  -x.sum()\n + y");
        assert_eq!(expr.col, 3);
        let ExprKind::Binary { lhs, rhs, .. } = &expr.kind else {
            panic!("{expr:?}")
        };
        let ExprKind::Unary { operand, .. } = &lhs.kind else {
            panic!("{lhs:?}")
        };
        assert_eq!((lhs.col, operand.col, rhs.col), (3, 4, 15));
    }

    #[test]
    fn calls() {
        assert_eq!(
            parsed("ones((1000000,), chunks=10)"),
            e(
                ExprKind::Call {
                    func: Box::new(name("ones", 1)),
                    args: vec![e(ExprKind::Tuple(vec![int(1_000_000, 7)]), 6)],
                    kwargs: vec![("chunks".into(), int(10, 25))],
                },
                1
            )
        );
        assert_eq!(
            parsed("sum(x, axis=(0, 1), keepdims=True)"),
            e(
                ExprKind::Call {
                    func: Box::new(name("sum", 1)),
                    args: vec![name("x", 5)],
                    kwargs: vec![
                        (
                            "axis".into(),
                            e(ExprKind::Tuple(vec![int(0, 14), int(1, 17)]), 13)
                        ),
                        ("keepdims".into(), e(ExprKind::Bool(true), 30)),
                    ],
                },
                1
            )
        );
        assert_eq!(shown("f()"), "f()");
        assert_eq!(shown("f(a,)"), "f(a)");
        assert_eq!(shown("f(a, b=1,)"), "f(a, b=1)");
        assert_eq!(shown("f(b = 1, c=[0, 1])"), "f(b=1, c=[0, 1])");
        assert_eq!(
            shown("concatenate([a, b], axis=0)"),
            "concatenate([a, b], axis=0)"
        );
        assert_eq!(shown("f(a == 1)"), "f((a == 1))");
        assert_eq!(shown("f(x)(y)"), "f(x)(y)");
        assert_eq!(shown("(a + b).sum()"), "(a + b).sum()");
    }

    #[test]
    fn method_calls_and_attributes() {
        let expr = parsed("x.sum(axis=0).T");
        assert_eq!(expr.to_string(), "x.sum(axis=0).T");
        let ExprKind::Attr { value, name: attr } = &expr.kind else {
            panic!("{expr:?}")
        };
        assert_eq!(attr, "T");
        let ExprKind::Call { func, args, kwargs } = &value.kind else {
            panic!("{value:?}")
        };
        assert_eq!(
            **func,
            e(
                ExprKind::Attr {
                    value: Box::new(name("x", 1)),
                    name: "sum".into()
                },
                1
            )
        );
        assert!(args.is_empty());
        assert_eq!(kwargs, &[("axis".to_owned(), int(0, 12))]);
        assert_eq!(shown("np.sqrt(x)"), "np.sqrt(x)");
        assert_eq!(shown("x . T"), "x.T");
    }

    #[test]
    fn slicing() {
        let slice = |start: Option<Expr>, stop: Option<Expr>, step: Option<Expr>| {
            IndexItem::Slice { start, stop, step }
        };
        let index = |source: &str| match parsed(source).kind {
            ExprKind::Index { value, items } => {
                assert_eq!(*value, name("a", 1));
                items
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            index("a[::2, 1:]"),
            [
                slice(None, None, Some(int(2, 5))),
                slice(Some(int(1, 8)), None, None)
            ]
        );
        assert_eq!(
            index("a[-1]"),
            [IndexItem::Index(e(
                ExprKind::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(int(1, 4))
                },
                3
            ))]
        );
        assert_eq!(
            index("a[:, None]"),
            [slice(None, None, None), IndexItem::NewAxis]
        );
        assert_eq!(
            index("a[..., 0]"),
            [IndexItem::Ellipsis, IndexItem::Index(int(0, 8))]
        );
        assert_eq!(
            index("a[1:5:-1]"),
            [slice(
                Some(int(1, 3)),
                Some(int(5, 5)),
                Some(e(
                    ExprKind::Unary {
                        op: UnaryOp::Neg,
                        operand: Box::new(int(1, 8))
                    },
                    7
                ))
            )]
        );
        assert_eq!(index("a[::]"), [slice(None, None, None)]);
        assert_eq!(index("a[0,]"), [IndexItem::Index(int(0, 3))]);
        assert_eq!(shown("a[::2, 1:]"), "a[::2, 1:]");
        assert_eq!(shown("a[i + 1 : n, ::-1][0]"), "a[(i + 1):n, ::(-1)][0]");
        assert_eq!(shown("a[None:3]"), "a[None:3]");
    }

    #[test]
    fn literals() {
        let lit = |source: &str| parsed(source).kind;
        assert_eq!(lit("1e-3"), ExprKind::Float(1e-3));
        assert_eq!(lit(".5"), ExprKind::Float(0.5));
        assert_eq!(lit("3."), ExprKind::Float(3.0));
        assert_eq!(lit("1.5"), ExprKind::Float(1.5));
        assert_eq!(lit("2.5E+10"), ExprKind::Float(2.5e10));
        assert_eq!(lit("1.e5"), ExprKind::Float(1e5));
        assert_eq!(lit("1_000.000_5"), ExprKind::Float(1000.0005));
        assert_eq!(lit("1e999"), ExprKind::Float(f64::INFINITY));
        assert_eq!(lit("42"), ExprKind::Int(42));
        assert_eq!(lit("0"), ExprKind::Int(0));
        assert_eq!(lit("000"), ExprKind::Int(0));
        assert_eq!(lit("1_000_000"), ExprKind::Int(1_000_000));
        assert_eq!(lit("9223372036854775807"), ExprKind::Int(i64::MAX));
        assert_eq!(lit("True"), ExprKind::Bool(true));
        assert_eq!(lit("False"), ExprKind::Bool(false));
        assert_eq!(lit("None"), ExprKind::None);
        assert_eq!(lit("inf"), ExprKind::Name("inf".into()));
        assert_eq!(lit("nan"), ExprKind::Name("nan".into()));
        assert_eq!(lit("_x1"), ExprKind::Name("_x1".into()));
        assert_eq!(lit("Nonesuch"), ExprKind::Name("Nonesuch".into()));
        assert_eq!(lit("'float32'"), ExprKind::Str("float32".into()));
        assert_eq!(lit("\"int8\""), ExprKind::Str("int8".into()));
        assert_eq!(lit("''"), ExprKind::Str(String::new()));
        assert_eq!(lit("'a\"b'"), ExprKind::Str("a\"b".into()));
        assert_eq!(lit("()"), ExprKind::Tuple(vec![]));
        assert_eq!(lit("[]"), ExprKind::List(vec![]));
        assert_eq!(lit("(1,)"), ExprKind::Tuple(vec![int(1, 2)]));
        assert_eq!(lit("[1, 2,]"), ExprKind::List(vec![int(1, 2), int(2, 5)]));
        assert_eq!(lit("((x))"), ExprKind::Name("x".into()));
        assert_eq!(lit(" \t\n x \n"), ExprKind::Name("x".into()));
    }

    #[test]
    fn lexical_errors() {
        assert_error("a $ b", 3, "unexpected character '$'");
        assert_error(
            "x.astype('f4)",
            10,
            "string literal never closed: expected a closing '",
        );
        assert_error(
            "\"int8'",
            1,
            "string literal never closed: expected a closing \"",
        );
        assert_error("a ! b", 3, "unexpected character '!'");
        assert_error("x + é", 5, "unexpected character 'é'");
        assert_error("é + $", 1, "unexpected character 'é'");
        assert_error(
            "1e",
            1,
            "invalid number literal '1e': the exponent has no digits",
        );
        assert_error(
            "x + 1e+",
            5,
            "invalid number literal '1e+': the exponent has no digits",
        );
        assert_error("1.2.3", 1, "invalid number literal '1.2.3'");
        assert_error("2 * 0x1F", 5, "invalid number literal '0x1F'");
        assert_error("1abc", 1, "invalid number literal '1abc'");
        assert_error(
            "1__000",
            1,
            "invalid number literal '1__000': underscores are only allowed between digits",
        );
        assert_error(
            "1_",
            1,
            "invalid number literal '1_': underscores are only allowed between digits",
        );
        assert_error(
            "1_.5",
            1,
            "invalid number literal '1_.5': underscores are only allowed between digits",
        );
        assert_error(
            "012",
            1,
            "invalid number literal '012': leading zeros are not allowed",
        );
        assert_error(
            "x - 9223372036854775808",
            5,
            "integer literal 9223372036854775808 is out of range (the largest integer is 9223372036854775807)",
        );
    }

    #[test]
    fn syntax_errors() {
        assert_error("a + * b", 5, "expected an expression, found '*'");
        assert_error("", 1, "unexpected end of input, expected an expression");
        assert_error("a +", 4, "unexpected end of input, expected an expression");
        assert_error("a + ", 4, "unexpected end of input, expected an expression");
        assert_error(
            "x.",
            3,
            "unexpected end of input, expected an attribute name",
        );
        assert_error("x.None", 3, "expected an attribute name, found 'None'");
        assert_error("(1 + 2", 1, "'(' is never closed");
        assert_error("f(a, g(b)", 2, "'(' is never closed");
        assert_error("a[1, (2", 6, "'(' is never closed");
        assert_error("[1, 2", 1, "'[' is never closed");
        assert_error("a)", 2, "unexpected ')' after the end of the expression");
        assert_error("a + )", 5, "unmatched ')'");
        assert_error("]", 1, "unmatched ']'");
        assert_error("(a]", 3, "closing ']' does not match '(' at column 1");
        assert_error("f(a b)", 5, "expected ',' or ')', found 'b'");
        assert_error("(1 +)", 5, "expected an expression, found ')'");
        assert_error("a[]", 3, "expected an index, found ']'");
        assert_error("a[1:2:3:4]", 8, "expected ',' or ']', found ':'");
        assert_error("a b", 3, "unexpected 'b' after the end of the expression");
        assert_error(
            "1, 2",
            2,
            "unexpected ',' after the end of the expression (write a tuple in parentheses: `(a, b)`)",
        );
        assert_error("x = 1", 3, "unexpected '=' after the end of the expression");
        assert_error("...", 1, "expected an expression, found '...'");
        assert_error("a == not b", 6, "expected an expression, found 'not'");
        assert_error("f(True=1)", 7, "expected ',' or ')', found '='");
    }

    #[test]
    fn semantic_syntax_errors() {
        let chained = "chained comparisons are not supported, use `(a < b) & (b < c)`";
        assert_error("a < b < c", 7, chained);
        assert_error("a == b != c", 8, chained);
        assert_error("not x <= y | z > w", 16, chained);
        assert_eq!(shown("(a < b) < c"), "((a < b) < c)");
        assert_error(
            "f(axis=0, x)",
            11,
            "positional argument follows keyword argument",
        );
        assert_error("f(a=1, b=2, a=3)", 13, "keyword argument 'a' is repeated");
    }

    #[test]
    fn nesting_limits() {
        let nested =
            |open: &str, close: &str, n: usize| format!("{}x{}", open.repeat(n), close.repeat(n));
        let too_nested =
            format!("expression nested too deeply (more than {MAX_NESTING} levels of brackets)");
        let too_deep = format!(
            "expression nested too deeply (its syntax tree is more than {MAX_DEPTH} levels deep)"
        );
        assert_eq!(shown(&nested("(", ")", MAX_NESTING)), "x");
        assert_error(
            &nested("(", ")", MAX_NESTING + 1),
            MAX_NESTING + 1,
            &too_nested,
        );
        assert_error(&"(".repeat(100_000), MAX_NESTING + 1, &too_nested);
        assert_error(&"a[".repeat(100_000), 2 * MAX_NESTING + 2, &too_nested);
        assert_error(&"[f(".repeat(100_000), 3 * 100 + 1, &too_nested);

        // Operators use no stack; the depth of the tree limits them.
        assert!(parse(&nested("-", "", MAX_DEPTH - 1)).is_ok());
        assert_error(&nested("-", "", MAX_DEPTH), 1, &too_deep);
        assert_error(&nested("not ", "", 100_000), 4 * 99_000 + 1, &too_deep);
        assert_error(
            &format!("{}2", "2**".repeat(100_000)),
            3 * 99_000 + 2,
            &too_deep,
        );
        let chain = |n: usize| vec!["a"; n].join(" + ");
        assert!(parse(&chain(MAX_DEPTH)).is_ok());
        assert_error(&chain(100_000), 4 * MAX_DEPTH - 1, &too_deep);
        assert_error(
            &format!("x{}", ".T".repeat(100_000)),
            2 * MAX_DEPTH,
            &too_deep,
        );
        assert_error(
            &format!("f{}", "()".repeat(100_000)),
            2 * MAX_DEPTH,
            &too_deep,
        );
        assert!(parse(&format!("(((a{})))", " * a".repeat(100_000))).is_err());
    }

    /// The deepest inputs allowed fit in the stack of a thread of 2 MiB, the default of
    /// spawned threads, even in a debug build.
    #[test]
    fn deepest_inputs_fit_in_a_small_stack() {
        let deepest = |level: &str, n: usize| {
            let closes: String = level
                .chars()
                .rev()
                .filter_map(|c| match c {
                    '(' => Some(')'),
                    '[' => Some(']'),
                    _ => None,
                })
                .collect();
            format!("{}x{}", level.repeat(n), closes.repeat(n))
        };
        let sources = [
            deepest("(", MAX_NESTING),
            deepest("f(", MAX_NESTING),
            deepest("[", MAX_NESTING),
            deepest("a[", MAX_NESTING),
            deepest("a[1:", MAX_NESTING),
            deepest("f(k=", MAX_NESTING),
            deepest("x.y(k=a[1:-(", MAX_NESTING / 3),
            // Each level adds 13 levels to the tree.
            deepest(
                "a or b and not c < d | e ^ f & g + h * -i ** ~x.y(",
                MAX_DEPTH / 13,
            ),
            format!("{}x", "not ".repeat(MAX_DEPTH - 1)),
            format!("{}x", "-".repeat(MAX_DEPTH - 1)),
            vec!["a"; MAX_DEPTH].join(" - "),
        ];
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for source in &sources {
                    let expr = parse(source).unwrap_or_else(|e| panic!("{e}"));
                    // Printing, cloning, comparing and dropping walk the tree recursively.
                    assert!(!expr.to_string().is_empty());
                    assert_eq!(expr.clone(), expr);
                }
            })
            .and_then(|thread| thread.join().map_err(|_| std::io::Error::other("panicked")))
            .unwrap();
    }

    #[test]
    fn display_round_trips() {
        for source in [
            "1 + 2 * 3 ** 2",
            "-2 ** 2",
            "2 ** -1",
            "(-2) ** 2",
            "- - -2",
            "a | b & c ^ d",
            "not a == b or c and not d",
            "ones((1000000,), chunks=10)",
            "sum(x, axis=(0, 1), keepdims=True)",
            "x.sum(axis=0).T",
            "a[::2, 1:, -1, None, ..., 1:5:-1, :][0]",
            "(1).real + (1.5).imag",
            "[1e-3, .5, 3., 2.5E+10, 1e300, 1e999, 0.1, 123456789.123456789]",
            "((), (1,), [], [[1, 2], [3]])",
            "where(x > 0, x, 0.0) @ y.T / z // 2 % 3",
            "f(a)(b)[c].d(e=None, f=False)",
            "-x.T[0]",
        ] {
            let expr = parsed(source);
            let text = expr.to_string();
            assert_eq!(
                erase(&parsed(&text)),
                erase(&expr),
                "{source:?} -> {text:?}"
            );
            // Printing is a fixed point after one round.
            assert_eq!(parsed(&text).to_string(), text);
        }
        assert_eq!(shown("(1).real"), "(1).real");
        assert_eq!(shown("1e999"), "1e999");
    }

    #[test]
    fn display_of_errors() {
        let err = parse("a + * b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "parse error at column 5: expected an expression, found '*'"
        );
        assert_eq!(err.render("a + * b"), "a + * b\n    ^");
        let source = "x +\n\t(y * $)";
        let err = parse(source).unwrap_err();
        assert_eq!(err.col, 11);
        assert_eq!(err.render(source), "\t(y * $)\n\t     ^");
        let source = "x +\n";
        let err = parse(source).unwrap_err();
        assert_eq!(err.col, 4);
        assert_eq!(err.render(source), "x +\n   ^");
        assert_eq!(parse("").unwrap_err().render(""), "\n^");
        let err: Box<dyn std::error::Error> = Box::new(parse(")").unwrap_err());
        assert_eq!(err.to_string(), "parse error at column 1: unmatched ')'");
    }

    /// A small deterministic pseudo-random generator (Knuth's MMIX LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Parsing never panics; errors point inside the source or just after it; and whatever
    /// parses prints back to the same tree.
    fn check_total(source: &str) {
        match parse(source) {
            Ok(expr) => {
                let text = expr.to_string();
                let again = parse(&text)
                    .unwrap_or_else(|e| panic!("{source:?} -> {text:?} does not parse: {e}"));
                assert_eq!(erase(&again), erase(&expr), "{source:?} -> {text:?}");
            }
            Err(err) => {
                let len = source.chars().count();
                assert!((1..=len + 1).contains(&err.col), "{source:?}: {err}");
                assert!(!err.message.is_empty());
                let _ = err.render(source);
            }
        }
    }

    #[test]
    fn random_printable_ascii_never_panics() {
        let mut rng = Lcg(0x07e5_5e4a);
        for _ in 0..5000 {
            let len = rng.below(24);
            let source: String = (0..len)
                .map(|_| char::from(b' ' + rng.below(95) as u8))
                .collect();
            check_total(&source);
        }
    }

    #[test]
    fn random_token_soup_never_panics() {
        const PIECES: &[&str] = &[
            "a", "x", "f", "1", "2.5", ".5", "1e3", "0", "True", "None", "not ", " and ", " or ",
            "+", "-", "*", "**", "/", "//", "%", "@", "&", "|", "^", "~", "<", "<=", "==", "!=",
            "<<", ">>", ">", "(", ")", "[", "]", ",", ":", ".", "...", "=", "axis=", " ", "T",
            "sum(", "$",
        ];
        let mut rng = Lcg(42);
        let mut parsed_ok = 0;
        for _ in 0..20_000 {
            let len = 1 + rng.below(16);
            let source: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            check_total(&source);
            parsed_ok += usize::from(parse(&source).is_ok());
        }
        // The soup is not all errors: some of the inputs exercise the printer.
        assert!(parsed_ok > 100, "only {parsed_ok} inputs parsed");
    }
}
