//! The two small expression languages of rule files: `meta` rule expressions
//! (boolean and arithmetic over other rules' results) and the conditions of
//! `if` lines (`version`, `plugin(...)`, `can(...)`). Both follow Perl's operator
//! precedence, which is what the rule authors wrote them against.

/// A parsed expression. Identifiers are rule names in metas, which `resolve` turns
/// into rule indexes; in `if` conditions, `plugin(X)` and `can(X)` become `Call`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    Ident(String),
    /// A rule identifier resolved to the rule's index.
    Rule(usize),
    Call(String, String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Call(String, String),
    Op(&'static str),
    Open,
    Close,
}

#[expect(
    clippy::string_slice,
    reason = "rule-file text, cut at ASCII characters found in it"
)]
fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == b')' {
            out.push(Tok::Close);
            i += 1;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            let digits: String = text[start..i].chars().filter(|&c| c != '_').collect();
            let n = digits
                .parse::<f64>()
                .map_err(|_| format!("bad number \"{}\"", &text[start..i]))?;
            out.push(Tok::Num(n));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = text[start..i].trim_end_matches(':').to_string();
            // `plugin(Name)` and `can(Name)`: the argument is a Perl package name, not
            // an expression.
            let rest = &text[i..];
            let trimmed = rest.trim_start();
            if (word == "plugin" || word == "can" || word == "has") && trimmed.starts_with('(') {
                let open = i + (rest.len() - trimmed.len());
                let close = text[open..]
                    .find(')')
                    .map(|p| open + p)
                    .ok_or_else(|| format!("missing ')' after {word}("))?;
                let arg = text[open + 1..close].trim().to_string();
                out.push(Tok::Call(word, arg));
                i = close + 1;
            } else {
                out.push(Tok::Ident(word));
            }
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let op = match two {
                "&&" | "||" | "==" | "!=" | "<=" | ">=" => Some(two),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Tok::Op(match op {
                    "&&" => "&&",
                    "||" => "||",
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    _ => ">=",
                }));
                i += 2;
            } else {
                let op = match c {
                    b'!' => "!",
                    b'<' => "<",
                    b'>' => ">",
                    b'+' => "+",
                    b'-' => "-",
                    b'*' => "*",
                    b'/' => "/",
                    _ => return Err(format!("unexpected character '{}'", c as char)),
                };
                out.push(Tok::Op(op));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 200;

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: &[&[(&str, Op)]] = &[
            &[("||", Op::Or)],
            &[("&&", Op::And)],
            &[("==", Op::Eq), ("!=", Op::Ne)],
            &[("<", Op::Lt), ("<=", Op::Le), (">", Op::Gt), (">=", Op::Ge)],
            &[("+", Op::Add), ("-", Op::Sub)],
            &[("*", Op::Mul), ("/", Op::Div)],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op() {
            let Some(&(_, op)) = ops.iter().find(|(s, _)| *s == op) else {
                break;
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Op("!")) => Ok(Expr::Not(Box::new(self.unary()?))),
            Some(Tok::Op("-")) => Ok(Expr::Neg(Box::new(self.unary()?))),
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Ident(s)) => Ok(Expr::Ident(s)),
            Some(Tok::Call(f, a)) => Ok(Expr::Call(f, a)),
            Some(Tok::Open) => {
                let e = self.binary(0)?;
                match self.toks.get(self.pos) {
                    Some(Tok::Close) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err("missing ')'".into()),
                }
            }
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("expression ends too early".into()),
        }
    }
}

/// Parses an expression; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Expr, String> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.binary(0)?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(e)
}

/// Evaluates with Perl's truth: non-zero is true, and comparisons yield 1 or 0.
pub fn eval(e: &Expr, lookup: &mut dyn FnMut(&Expr) -> f64) -> f64 {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    match e {
        Expr::Num(n) => *n,
        Expr::Ident(_) | Expr::Rule(_) | Expr::Call(..) => lookup(e),
        Expr::Not(x) => b(eval(x, lookup) == 0.0),
        Expr::Neg(x) => -eval(x, lookup),
        Expr::Bin(op, l, r) => {
            let l = eval(l, lookup);
            // Short-circuit as Perl does; `A || B` yields the first true value.
            match op {
                Op::Or if l != 0.0 => return l,
                Op::And if l == 0.0 => return 0.0,
                _ => {}
            }
            let r = eval(r, lookup);
            match op {
                Op::Or | Op::And => r,
                Op::Eq => b(l == r),
                Op::Ne => b(l != r),
                Op::Lt => b(l < r),
                Op::Le => b(l <= r),
                Op::Gt => b(l > r),
                Op::Ge => b(l >= r),
                Op::Add => l + r,
                Op::Sub => l - r,
                Op::Mul => l * r,
                Op::Div if r == 0.0 => 0.0,
                Op::Div => l / r,
            }
        }
    }
}

/// Replaces rule names by their indexes, once, so that evaluating a meta rule for
/// each message looks nothing up by name. A name no rule has is false (0), as in
/// SpamAssassin.
pub fn resolve(e: &Expr, index: &dyn Fn(&str) -> Option<usize>) -> Expr {
    match e {
        Expr::Ident(name) => index(name).map_or(Expr::Num(0.0), Expr::Rule),
        Expr::Not(x) => Expr::Not(Box::new(resolve(x, index))),
        Expr::Neg(x) => Expr::Neg(Box::new(resolve(x, index))),
        Expr::Bin(op, l, r) => Expr::Bin(
            *op,
            Box::new(resolve(l, index)),
            Box::new(resolve(r, index)),
        ),
        Expr::Num(_) | Expr::Rule(_) | Expr::Call(..) => e.clone(),
    }
}

/// The rule indexes a resolved expression refers to.
pub fn rule_refs(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::Rule(i) => out.push(*i),
        Expr::Not(x) | Expr::Neg(x) => rule_refs(x, out),
        Expr::Bin(_, l, r) => {
            rule_refs(l, out);
            rule_refs(r, out);
        }
        Expr::Num(_) | Expr::Ident(_) | Expr::Call(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vals: &[(&str, f64)]) -> f64 {
        let e = parse(text).unwrap();
        eval(&e, &mut |x| match x {
            Expr::Ident(n) => vals.iter().find(|(k, _)| k == n).map_or(0.0, |v| v.1),
            _ => 0.0,
        })
    }

    #[test]
    fn boolean_meta() {
        assert_eq!(run("A && !B", &[("A", 1.0)]), 1.0);
        assert_eq!(run("A && !B", &[("A", 1.0), ("B", 1.0)]), 0.0);
        assert_eq!(run("(A || B) && C", &[("B", 1.0), ("C", 1.0)]), 1.0);
    }

    #[test]
    fn arithmetic_meta() {
        let v = [("A", 1.0), ("B", 1.0), ("C", 0.0)];
        assert_eq!(run("(A + B + C) > 1", &v), 1.0);
        assert_eq!(run("(A + B + C) >= 3", &v), 0.0);
        assert_eq!(run("A + B * 2 == 3", &v), 1.0);
        assert_eq!(run("A / C", &v), 0.0);
    }

    #[test]
    fn resolved_names_read_rule_values() {
        let e = resolve(&parse("A && !B && C").unwrap(), &|n| {
            ["A", "B"].iter().position(|k| *k == n)
        });
        let mut refs = Vec::new();
        rule_refs(&e, &mut refs);
        assert_eq!(refs, [0, 1]);
        let v = eval(&e, &mut |x| match x {
            Expr::Rule(0) => 1.0,
            _ => 0.0,
        });
        assert_eq!(v, 0.0, "C is unknown, so false");
    }

    #[test]
    fn if_conditions() {
        let e =
            parse("(version >= 3.004000) && !plugin(Mail::SpamAssassin::Plugin::DKIM)").unwrap();
        let v = eval(&e, &mut |x| match x {
            Expr::Ident(n) if n == "version" => 4.000001,
            _ => 0.0,
        });
        assert_eq!(v, 1.0);
        assert!(parse("A &&").is_err());
        assert!(parse("(A").is_err());
    }
}
