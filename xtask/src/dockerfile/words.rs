//! The shell-word rules the builder applies to instruction arguments: splitting, quotes,
//! escapes, and `$VAR` / `${VAR:-default}` / `${VAR:+word}` expansion.

/// What a variable holds when `FROM` or a global `ARG` default expands it.
#[derive(Debug, Clone)]
pub(super) enum Var {
    Value(String),
    /// Not declared, or declared without a value: Docker expands it to nothing.
    Unset,
    /// Its value is not in the file or the build arguments (the build platform, a default
    /// that failed to expand): a check that used it would be a guess.
    Unknown(String),
}

/// Splits at blanks outside quotes, keeping quotes and escapes in the words (BuildKit's
/// `parseWords`); `false` when a quote is left open.
pub(super) fn raw_words(text: &str, escape: char) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, quote.is_none())
}

/// Splits at blanks outside quotes and removes the quotes and escapes (a heredoc's name).
pub(super) fn unquoted_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    None => return Err("a single quote is never closed".into()),
                    Some('\'') => break,
                    Some(c) => word.push(c),
                }
            },
            '"' => loop {
                match chars.next() {
                    None => return Err("a double quote is never closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(n @ ('"' | '$' | '\\')) => word.push(n),
                        Some(n) => {
                            word.push('\\');
                            word.push(n);
                        }
                        None => return Err("a double quote is never closed".into()),
                    },
                    Some(c) => word.push(c),
                }
            },
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// The builder's processing of one word: quotes and escapes removed, `$NAME`, `${NAME}`,
/// `${NAME:-word}` and `${NAME:+word}` expanded. In `strict` mode a bare reference to a
/// variable without a value is an error (the result would be a guess at what was meant).
pub(super) fn expand(
    word: &str,
    escape: char,
    var: &dyn Fn(&str) -> Var,
    strict: bool,
) -> std::result::Result<String, String> {
    let mut words = Words {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        var,
        strict,
    };
    words.until(None)
}

struct Words<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    var: &'a dyn Fn(&str) -> Var,
    strict: bool,
}

impl Words<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn until(&mut self, stop: Option<char>) -> std::result::Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(out);
            }
            match c {
                '\'' => {
                    self.pos += 1;
                    loop {
                        match self.bump() {
                            None => return Err("a single quote is never closed".into()),
                            Some('\'') => break,
                            Some(c) => out.push(c),
                        }
                    }
                }
                '"' => {
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err("a double quote is never closed".into()),
                            Some('"') => {
                                self.pos += 1;
                                break;
                            }
                            Some('$') => out.push_str(&self.dollar()?),
                            Some(c) => {
                                self.pos += 1;
                                if c == self.escape {
                                    match self.peek() {
                                        None => continue,
                                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                                            self.pos += 1;
                                            out.push(n);
                                        }
                                        Some(_) => out.push(c),
                                    }
                                } else {
                                    out.push(c);
                                }
                            }
                        }
                    }
                }
                '$' => out.push_str(&self.dollar()?),
                c => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.bump() {
                            None => break,
                            Some(n) => out.push(n),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(format!("missing '{stop}'")),
            None => Ok(out),
        }
    }

    fn dollar(&mut self) -> std::result::Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return self.bare(&name);
        }
        self.pos += 1;
        if matches!(self.peek(), None | Some('{' | '}' | ':')) {
            return Err("bad substitution".into());
        }
        let name = self.name();
        match self.bump() {
            Some('}') => self.bare(&name),
            Some(':') => {
                let modifier = self.bump();
                let word = self.until(Some('}'))?;
                let value = match (self.var)(&name) {
                    Var::Unknown(why) => return Err(why),
                    Var::Value(v) => v,
                    Var::Unset => String::new(),
                };
                match modifier {
                    Some('-') if value.is_empty() => Ok(word),
                    Some('-') => Ok(value),
                    Some('+') if value.is_empty() => Ok(String::new()),
                    Some('+') => Ok(word),
                    _ => Err(format!(
                        "${{{name}:...}} uses a form the check does not follow: use ${{{name}:-default}} or ${{{name}:+word}}"
                    )),
                }
            }
            _ => Err(format!(
                "${{{name}...}} uses a form the check does not follow: use ${{{name}}}, ${{{name}:-default}} or ${{{name}:+word}}"
            )),
        }
    }

    fn bare(&self, name: &str) -> std::result::Result<String, String> {
        match (self.var)(name) {
            Var::Value(v) => Ok(v),
            Var::Unknown(why) => Err(why),
            Var::Unset if self.strict => Err(format!(
                "{name} has no value: give it one with ARG {name}=... before the first FROM, or pass it as a build arg"
            )),
            Var::Unset => Ok(String::new()),
        }
    }

    /// A variable name; a digit or a special parameter (`$1`, `$@`) is a name of its own.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!0".contains(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}
