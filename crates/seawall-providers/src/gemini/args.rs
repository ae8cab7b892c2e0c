//! Function-call arguments that Gemini streams in pieces.
//!
//! With `toolConfig.functionCallingConfig.streamFunctionCallArguments`, newer models send a
//! call over several chunks: a `functionCall` with the `name` and `willContinue: true`,
//! then parts whose `partialArgs` each set one value at a `jsonPath` (`$.recipe.items[0].name`;
//! a string value may itself arrive in fragments, each with `willContinue: true` but the
//! last), and a `functionCall` without `willContinue` that ends the call. [`ArgsWriter`]
//! writes these as JSON text while they arrive, so the fragments it hands out join to the
//! call's arguments.

use serde_json::Value;

/// One step of a `jsonPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(u64),
}

/// The steps of a `jsonPath` (`$.a.b[0]['c d']`); `None` for one that is not of that form.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            steps.push(Step::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// The value one `partialArgs` entry sets.
#[derive(Debug)]
pub(super) enum Piece<'a> {
    /// A string, or a fragment of one (`continues` when more of it follows).
    Text { fragment: &'a str, continues: bool },
    /// A number, a boolean or null.
    Scalar(Value),
}

/// A container the writer has opened and not yet closed.
#[derive(Debug)]
struct Open {
    /// The step that leads into it from its parent (`None` for the arguments object).
    via: Option<Step>,
    array: bool,
    members: usize,
}

/// Writes streamed argument values as JSON text.
///
/// Values are expected in document order, as Gemini generates them: a container is closed
/// as soon as a value outside it arrives.
#[derive(Debug, Default)]
pub(super) struct ArgsWriter {
    open: Vec<Open>,
    /// The path of the string whose closing quote is not written yet.
    open_string: Option<Vec<Step>>,
    pending: String,
    written: bool,
}

impl ArgsWriter {
    /// Sets the value at `json_path`. A path that is not a JSON path is skipped: the
    /// arguments stay valid JSON without it.
    pub(super) fn set(&mut self, json_path: &str, piece: Piece<'_>) {
        let Some(steps) = parse_path(json_path) else {
            return;
        };
        if let Some(open) = self.open_string.take() {
            if open == steps
                && let Piece::Text {
                    fragment,
                    continues,
                } = piece
            {
                self.push_fragment(fragment);
                if continues {
                    self.open_string = Some(open);
                } else {
                    self.pending.push('"');
                }
                return;
            }
            self.pending.push('"');
        }
        if self.open.is_empty() {
            self.open_container(None, matches!(steps[0], Step::Index(_)));
        }
        let parent_len = steps.len() - 1;
        // The containers already open that lead to this value.
        let mut depth = 0;
        while depth < parent_len
            && depth + 1 < self.open.len()
            && self.open[depth + 1].via.as_ref() == Some(&steps[depth])
        {
            depth += 1;
        }
        while self.open.len() > depth + 1 {
            self.close_container();
        }
        for i in depth..parent_len {
            self.member(&steps[i]);
            self.open_container(
                Some(steps[i].clone()),
                matches!(steps[i + 1], Step::Index(_)),
            );
        }
        self.member(&steps[parent_len]);
        match piece {
            Piece::Text {
                fragment,
                continues,
            } => {
                self.pending.push('"');
                self.push_fragment(fragment);
                if continues {
                    self.open_string = Some(steps);
                } else {
                    self.pending.push('"');
                }
            }
            Piece::Scalar(value) => self.pending.push_str(&value.to_string()),
        }
    }

    /// Sets the whole arguments at once (a part that carries `args` rather than
    /// `partialArgs`), when nothing was written yet.
    pub(super) fn set_all(&mut self, args: &Value) {
        if !self.written && self.pending.is_empty() {
            self.pending = args.to_string();
            self.written = true;
        }
    }

    /// Closes whatever is open: the arguments are complete (`{}` when none arrived).
    pub(super) fn finish(&mut self) {
        if self.open_string.take().is_some() {
            self.pending.push('"');
        }
        while !self.open.is_empty() {
            self.close_container();
        }
        if !self.written {
            self.pending.push_str("{}");
            self.written = true;
        }
    }

    /// The JSON text written since the last call.
    pub(super) fn take(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    fn open_container(&mut self, via: Option<Step>, array: bool) {
        self.pending.push(if array { '[' } else { '{' });
        self.written = true;
        self.open.push(Open {
            via,
            array,
            members: 0,
        });
    }

    fn close_container(&mut self) {
        if let Some(open) = self.open.pop() {
            self.pending.push(if open.array { ']' } else { '}' });
        }
    }

    /// Starts a member of the innermost container: the separator, and the key in an object.
    fn member(&mut self, step: &Step) {
        let Some(top) = self.open.last_mut() else {
            return;
        };
        if top.members > 0 {
            self.pending.push(',');
        }
        top.members += 1;
        if let (Step::Key(key), false) = (step, top.array) {
            self.pending
                .push_str(&Value::from(key.as_str()).to_string());
            self.pending.push(':');
        }
    }

    fn push_fragment(&mut self, fragment: &str) {
        let quoted = Value::from(fragment).to_string();
        // The JSON string without its quotes: the escaped characters.
        self.pending.push_str(&quoted[1..quoted.len() - 1]);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{ArgsWriter, Piece};

    fn text(fragment: &str, continues: bool) -> Piece<'_> {
        Piece::Text {
            fragment,
            continues,
        }
    }

    fn written(steps: &[(&str, Piece<'_>)]) -> Value {
        let mut writer = ArgsWriter::default();
        let mut joined = String::new();
        for (path, piece) in steps {
            writer.set(
                path,
                match piece {
                    Piece::Text {
                        fragment,
                        continues,
                    } => text(fragment, *continues),
                    Piece::Scalar(value) => Piece::Scalar(value.clone()),
                },
            );
            joined.push_str(&writer.take());
        }
        writer.finish();
        joined.push_str(&writer.take());
        serde_json::from_str(&joined).unwrap_or_else(|e| panic!("{joined}: {e}"))
    }

    #[test]
    fn nested_objects_arrays_and_split_strings_join_to_the_arguments() {
        let value = written(&[
            ("$.recipe.name", text("Lasa", true)),
            ("$.recipe.name", text("gna \"al forno\"", true)),
            ("$.recipe.name", text("", false)),
            ("$.recipe.items[0].amount", text("16 oz", false)),
            ("$.recipe.items[0].price", Piece::Scalar(json!(0.5))),
            ("$.recipe.items[1].amount", text("1 lb", false)),
            ("$.recipe.vegan", Piece::Scalar(json!(false))),
            ("$.tags[0]", text("dinner", false)),
            ("$.tags[1]", Piece::Scalar(Value::Null)),
            ("$['odd key']", Piece::Scalar(json!(3))),
        ]);
        assert_eq!(
            value,
            json!({
                "recipe": {
                    "name": "Lasagna \"al forno\"",
                    "items": [{"amount": "16 oz", "price": 0.5}, {"amount": "1 lb"}],
                    "vegan": false
                },
                "tags": ["dinner", null],
                "odd key": 3
            })
        );
    }

    #[test]
    fn a_string_left_open_and_no_arguments_still_end_as_json() {
        assert_eq!(
            written(&[("$.city", text("Bos", true))]),
            json!({"city": "Bos"})
        );
        assert_eq!(written(&[]), json!({}));
        assert_eq!(
            written(&[("not a path", text("x", false))]),
            json!({}),
            "a malformed path is skipped"
        );
    }
}
