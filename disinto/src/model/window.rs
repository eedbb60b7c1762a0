//! A maintenance window, as an operator writes it for `upgrade --auto --window`: days and a
//! local time span, `Sat 02:00-04:00`, `Mon-Fri 01:00-03:00`, `Sat,Sun 23:00-01:00` (a span
//! that ends before it starts runs past midnight, and belongs to the day it starts on).

use anyhow::{bail, Result};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A parsed window: the days it opens on (Monday is 0) and its span in minutes of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    start: u32,
    end: u32,
}

fn day(name: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(name))
}

fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Window {
    /// Reads `DAYS HH:MM-HH:MM`, DAYS being a day, a range (`Mon-Fri`) or a comma list of
    /// either; one line naming the window and the form when it does not parse.
    pub fn parse(text: &str) -> Result<Window> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--window {text:?}: {why}; write days and a local time span, like \"Sat 02:00-04:00\" or \"Mon-Fri 01:00-03:00\""
            )
        };
        let mut words = text.split_whitespace();
        let (Some(days_text), Some(span), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad("not two words"));
        };
        let mut days = [false; 7];
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (Some(a), Some(b)) = (day(a), day(b)) else {
                        return Err(bad(&format!("{part:?} is not a range of days")));
                    };
                    let mut d = a;
                    loop {
                        days[d] = true;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => match day(part) {
                    Some(d) => days[d] = true,
                    None => return Err(bad(&format!("{part:?} is not a day (Mon..Sun)"))),
                },
            }
        }
        let Some((start, end)) = span.split_once('-') else {
            return Err(bad(&format!("{span:?} is not a span HH:MM-HH:MM")));
        };
        let (Some(start), Some(end)) = (minutes(start), minutes(end)) else {
            return Err(bad(&format!("{span:?} is not a span HH:MM-HH:MM")));
        };
        if start == end {
            bail!("--window {text:?}: the span is empty: give an end after its start");
        }
        Ok(Window { days, start, end })
    }

    /// Whether the window is open at local `weekday` (Monday is 0) and `minute` of the day.
    pub fn is_open(&self, weekday: usize, minute: u32) -> bool {
        let weekday = weekday % 7;
        if self.start < self.end {
            return self.days[weekday] && minute >= self.start && minute < self.end;
        }
        // Past midnight: open late on a window day, or early on the day after one.
        let yesterday = (weekday + 6) % 7;
        (self.days[weekday] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON: usize = 0;
    const FRI: usize = 4;
    const SAT: usize = 5;
    const SUN: usize = 6;

    fn at(h: u32, m: u32) -> u32 {
        h * 60 + m
    }

    #[test]
    fn a_window_opens_on_its_days_within_its_span() {
        let w = Window::parse("Sat 02:00-04:00").unwrap();
        assert!(w.is_open(SAT, at(2, 0)) && w.is_open(SAT, at(3, 59)));
        assert!(!w.is_open(SAT, at(4, 0)) && !w.is_open(SAT, at(1, 59)));
        assert!(!w.is_open(SUN, at(3, 0)));
        let w = Window::parse("Mon-Fri 01:00-03:00").unwrap();
        assert!(w.is_open(MON, at(1, 30)) && w.is_open(FRI, at(2, 0)));
        assert!(!w.is_open(SAT, at(2, 0)));
        let w = Window::parse("fri-mon,Wed 12:00-13:00").unwrap();
        assert!(w.is_open(SUN, at(12, 0)) && w.is_open(2, at(12, 30)) && !w.is_open(1, at(12, 0)));
    }

    #[test]
    fn a_span_past_midnight_belongs_to_its_first_day() {
        let w = Window::parse("Sat 23:00-01:00").unwrap();
        assert!(w.is_open(SAT, at(23, 30)));
        assert!(w.is_open(SUN, at(0, 30)));
        assert!(
            !w.is_open(SAT, at(0, 30)),
            "the night before Saturday is Friday's"
        );
        assert!(!w.is_open(SUN, at(23, 30)));
    }

    #[test]
    fn a_window_that_does_not_parse_is_named_in_one_line() {
        for (text, says) in [
            ("Sat", "not two words"),
            ("Caturday 02:00-04:00", "not a day"),
            ("Mon-Xyz 02:00-04:00", "not a range of days"),
            ("Sat 2-4", "not a span"),
            ("Sat 24:00-01:00", "not a span"),
            ("Sat 02:00-02:00", "empty"),
            ("Sat 02:00-04:00 UTC", "not two words"),
        ] {
            let e = Window::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains(text) && !e.contains('\n'), "{e}");
        }
    }
}
