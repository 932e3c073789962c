//! serpent, Pyro5's default serializer, as a strict literal subset: Python
//! literals read into JSON values (never evaluated), and JSON values written
//! back as serpent.
//!
//! Read: an optional `#` header line, then one literal: `None`, `True`,
//! `False`, integers and floats, strings (`'…'` or `"…"`, with Python's
//! escapes), lists, tuples and sets (as JSON arrays) and dicts (string or
//! number keys), nested at most [`MAX_DEPTH`] deep. Anything else (names,
//! calls, operators, complex numbers, infinities) is refused. serpent's
//! own forms arrive as what they are: bytes as `{'data': …, 'encoding':
//! 'base64'}`, classes as dicts with `__class__`.

use serde_json::{Map, Number, Value};

use super::body::BodyError;

/// Deepest nesting read.
pub const MAX_DEPTH: usize = 128;

/// The header serpent writes before a literal.
const HEADER: &[u8] = b"# serpent utf-8 python3.2\n";

/// Reads a serpent payload.
///
/// # Errors
///
/// What is not a literal of the subset, and where.
pub fn parse(payload: &[u8]) -> Result<Value, BodyError> {
    let text =
        std::str::from_utf8(payload).map_err(|e| BodyError(format!("serpent that is not UTF-8: {e}")))?;
    let body = match text.strip_prefix('#') {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
        None => text,
    };
    let mut reader = Reader { text: body, at: 0 };
    let value = reader.value(0)?;
    reader.space();
    if reader.at != body.len() {
        return Err(reader.error("text after the value"));
    }
    Ok(value)
}

/// Writes `value` as serpent.
pub fn write(value: &Value) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    write_value(value, &mut out);
    out
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> BodyError {
        BodyError(format!("serpent: {what} at byte {}", self.at))
    }

    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn space(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_ascii_whitespace() {
                break;
            }
            self.at += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), BodyError> {
        self.space();
        match self.bump() {
            Some(c) if c == wanted => Ok(()),
            _ => Err(self.error(&format!("expected {wanted:?}"))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, BodyError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.space();
        match self.peek() {
            Some('\'' | '"') => self.string().map(Value::String),
            Some('[') => self.sequence('[', ']', depth),
            Some('(') => self.sequence('(', ')', depth),
            Some('{') => self.braces(depth),
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => Err(self.error("not a literal")),
            None => Err(self.error("the text ends before a value")),
        }
    }

    fn word(&mut self) -> Result<Value, BodyError> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.at += 1;
        }
        match self.text.get(start..self.at) {
            Some("None") => Ok(Value::Null),
            Some("True") => Ok(Value::Bool(true)),
            Some("False") => Ok(Value::Bool(false)),
            _ => {
                self.at = start;
                Err(self.error("a name, which is not a literal (only None, True and False are)"))
            }
        }
    }

    fn number(&mut self) -> Result<Value, BodyError> {
        let start = self.at;
        if matches!(self.peek(), Some('-' | '+')) {
            self.at += 1;
        }
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' | '_' => {}
                '.' | 'e' | 'E' => float = true,
                '+' | '-'
                    if matches!(
                        self.at.checked_sub(1).and_then(|i| self.text.as_bytes().get(i)),
                        Some(b'e' | b'E')
                    ) => {}
                _ => break,
            }
            self.at += 1;
        }
        let digits: String = self.text.get(start..self.at).unwrap_or_default().replace('_', "");
        if matches!(self.peek(), Some('j' | 'J')) {
            return Err(self.error("a complex number"));
        }
        if !float {
            if let Ok(n) = digits.parse::<i64>() {
                return Ok(Value::Number(n.into()));
            }
            if let Ok(n) = digits.parse::<u64>() {
                return Ok(Value::Number(n.into()));
            }
        }
        match digits.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.at = start;
                Err(self.error("a number JSON cannot hold (infinite, or not a number)"))
            }
        }
    }

    fn string(&mut self) -> Result<String, BodyError> {
        let quote = self.bump().ok_or_else(|| self.error("expected a string"))?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("a string that does not end")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => self.escape(&mut out)?,
                Some('\n') => return Err(self.error("a line break inside a string")),
                Some(c) => out.push(c),
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Result<u32, BodyError> {
        let text = self.rest().get(..digits).ok_or_else(|| self.error("a short escape"))?;
        let value = u32::from_str_radix(text, 16).map_err(|_| self.error("a bad escape"))?;
        self.at += digits;
        Ok(value)
    }

    fn escape(&mut self, out: &mut String) -> Result<(), BodyError> {
        let c = self.bump().ok_or_else(|| self.error("a string that ends in an escape"))?;
        let decoded = match c {
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '0' => '\0',
            '\n' => return Ok(()),
            'x' => char::from_u32(self.hex(2)?).ok_or_else(|| self.error("a bad escape"))?,
            'u' => char::from_u32(self.hex(4)?).ok_or_else(|| self.error("a bad escape"))?,
            'U' => char::from_u32(self.hex(8)?).ok_or_else(|| self.error("a bad escape"))?,
            _ => return Err(self.error("an unknown escape")),
        };
        out.push(decoded);
        Ok(())
    }

    /// A list (`[…]`) or a tuple (`(…)`): a JSON array.
    fn sequence(&mut self, open: char, close: char, depth: usize) -> Result<Value, BodyError> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            self.space();
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth + 1)?);
            self.space();
            match self.bump() {
                Some(',') => {}
                Some(c) if c == close => return Ok(Value::Array(items)),
                _ => return Err(self.error(&format!("expected ',' or {close:?}"))),
            }
        }
    }

    /// A dict (keys: strings, or numbers as their text) or a set (an array).
    fn braces(&mut self, depth: usize) -> Result<Value, BodyError> {
        self.expect('{')?;
        self.space();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value(depth + 1)?;
        self.space();
        if self.peek() != Some(':') {
            // A set.
            let mut items = vec![first];
            loop {
                self.space();
                match self.bump() {
                    Some('}') => return Ok(Value::Array(items)),
                    Some(',') => {
                        self.space();
                        if self.peek() == Some('}') {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        items.push(self.value(depth + 1)?);
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let name = match key {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err(self.error("a dict key that is neither a string nor a number")),
            };
            self.expect(':')?;
            let value = self.value(depth + 1)?;
            map.insert(name, value);
            self.space();
            match self.bump() {
                Some('}') => return Ok(Value::Object(map)),
                Some(',') => {
                    self.space();
                    if self.peek() == Some('}') {
                        self.at += 1;
                        return Ok(Value::Object(map));
                    }
                    key = self.value(depth + 1)?;
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"None"),
        Value::Bool(true) => out.extend_from_slice(b"True"),
        Value::Bool(false) => out.extend_from_slice(b"False"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'\'');
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\'' => out.extend_from_slice(b"\\'"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_serpent_writes_reads_as_json() {
        // As Pyro5 5.17's serpent 1.43 wrote it.
        let payload = "# serpent utf-8 python3.2\n{'object':'calc','method':'add','params':(2,3.5,'it\\'s \"q\"\\n\u{e9}',None,True,[1,2],{1,2},{'data': 'YWI=', 'encoding': 'base64'},1000000000000000000000000000000,(),(7,)),'kwargs':{}}";
        let value = parse(payload.as_bytes()).unwrap();
        assert_eq!(value["object"], "calc");
        assert_eq!(value["params"][0], 2);
        assert_eq!(value["params"][1], 3.5);
        assert_eq!(value["params"][2], "it's \"q\"\n\u{e9}");
        assert_eq!(value["params"][3], Value::Null);
        assert_eq!(value["params"][4], true);
        assert_eq!(value["params"][5], json!([1, 2]));
        assert_eq!(value["params"][6], json!([1, 2]));
        assert_eq!(value["params"][7], json!({"data": "YWI=", "encoding": "base64"}));
        assert_eq!(value["params"][8].as_f64().unwrap(), 1e30);
        assert_eq!(value["params"][9], json!([]));
        assert_eq!(value["params"][10], json!([7]));
        assert_eq!(value["kwargs"], json!({}));
    }

    #[test]
    fn nothing_outside_the_literal_subset_is_read() {
        for bad in [
            "__import__('os').system('x')",
            "open('f')",
            "1+2",
            "1e30000",
            "(1+2j)",
            "[1,",
            "'unterminated",
            "{[1]: 2}",
            "None None",
            "'\\q'",
            "lambda: 0",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let value = json!({"s": "a'b\\c\n\u{1}é", "n": [1, -2, 3.25, null, true, false], "o": {}});
        let text = write(&value);
        assert!(text.starts_with(HEADER));
        assert_eq!(parse(&text).unwrap(), value);
    }
}
