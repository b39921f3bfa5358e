//! The dashboard page. Plain HTML with a meta refresh, no scripts; every value
//! from the pipeline is escaped. v2 draws the photo in an inline SVG with a
//! rectangle over each face, so nothing is re-encoded on the server.

use std::fmt::Write as _;

use airport_common::types::{Alert, FrameImage, StatsRecord};

use crate::{SectionView, Variant};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn photo(out: &mut String, rec: &StatsRecord, img: &FrameImage) {
    if !is_base64(&img.data)
        || (img.content_type != "image/jpeg" && img.content_type != "image/png")
    {
        return;
    }
    let (w, h) = (img.width.max(1), img.height.max(1));
    let stroke = (w.max(h) as f32 / 200.0).max(2.0);
    let _ = write!(
        out,
        "<figure class=\"photo\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         style=\"max-width:640px;width:100%\" role=\"img\" aria-label=\"frame {} with {} faces marked\">\
         <image href=\"data:{};base64,{}\" x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\"/>",
        escape(rec.frame_id.as_str()),
        rec.people.len(),
        img.content_type,
        img.data
    );
    for p in &rec.people {
        if let Some(b) = &p.bbox {
            let _ = write!(
                out,
                "<rect class=\"face\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#e02020\" stroke-width=\"{stroke}\"/>",
                b.x, b.y, b.width, b.height
            );
        }
    }
    out.push_str("</svg></figure>\n");
}

/// The whole page.
pub fn dashboard(
    variant: Variant,
    sections: &[SectionView],
    alert: Option<&Alert>,
    refresh_secs: u32,
) -> String {
    let title = match variant {
        Variant::V1 => "Dashboard V1",
        Variant::V2 => "Dashboard V2",
    };
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_secs}\">\
         <title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}p{{line-height:1.5}}.stale{{color:#a60}}</style>\
         </head><body>\n<h1>{title}</h1>\n"
    );
    for s in sections {
        let _ = writeln!(out, "<h2>Section {}</h2>", escape(s.section.as_str()));
        if let Some(err) = &s.error {
            let _ = writeln!(
                out,
                "<p class=\"stale\">section service unavailable ({}); showing the last data received</p>",
                escape(err)
            );
        }
        match &s.latest {
            None => out.push_str("<p class=\"stats\">no frames yet</p>\n"),
            Some(rec) => {
                if variant == Variant::V2
                    && let Some(img) = &rec.image
                {
                    photo(&mut out, rec, img);
                }
                let _ = writeln!(out, "<p class=\"stats\">timestamp: {}<br>", rec.timestamp);
                if rec.people.is_empty() {
                    let _ = writeln!(out, "no faces | event: {}<br>", rec.event);
                }
                for p in &rec.people {
                    let _ = writeln!(
                        out,
                        "gender: {} | age: {} | event: {}<br>",
                        p.gender, p.age_bracket, rec.event
                    );
                }
                out.push_str("</p>\n");
            }
        }
    }
    out.push_str("<h2>Alert</h2>\n");
    match alert {
        None => out.push_str("<p class=\"alert\">no alerts</p>\n"),
        Some(a) => {
            let _ = write!(
                out,
                "<p class=\"alert\">timestamp: {}<br>\nsection: {}<br>\nevent: {}<br>\nname: <b>{}</b></p>\n",
                a.timestamp,
                escape(a.section.as_str()),
                a.event,
                escape(&a.name)
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use airport_common::Timestamp;
    use airport_common::contract::BoundingBox;
    use airport_common::types::{AgeBracket, Event, FrameId, Gender, Id, Person};

    fn record() -> StatsRecord {
        StatsRecord {
            frame_id: FrameId::new("f1").unwrap(),
            camera_id: Id::new("1").unwrap(),
            section: Id::new("1").unwrap(),
            event: Event::Exit,
            timestamp: Timestamp::parse("2020-02-25T14:35:38.204522Z").unwrap(),
            count: 1,
            people: vec![Person {
                gender: Gender::Male,
                gender_confidence: 0.9,
                age: 40.0,
                age_bracket: AgeBracket::A38To43,
                bbox: Some(BoundingBox {
                    x: 1.0,
                    y: 2.0,
                    width: 3.0,
                    height: 4.0,
                }),
            }],
            image: Some(FrameImage {
                content_type: "image/jpeg".into(),
                width: 64,
                height: 48,
                data: "AAAA".into(),
            }),
        }
    }

    fn alert() -> Alert {
        Alert {
            frame_id: FrameId::new("f0").unwrap(),
            camera_id: Id::new("2").unwrap(),
            section: Id::new("1").unwrap(),
            event: Event::Entry,
            timestamp: Timestamp::parse("2020-02-25T14:35:27.224857Z").unwrap(),
            name: "PersonX".into(),
            confidence: 0.5,
            bbox: None,
        }
    }

    #[test]
    fn v1_has_the_seed_lines_and_no_photo() {
        let views = [SectionView {
            section: Id::new("1").unwrap(),
            latest: Some(record()),
            error: None,
        }];
        let page = dashboard(Variant::V1, &views, Some(&alert()), 2);
        assert!(page.contains("<h1>Dashboard V1</h1>"));
        assert!(page.contains("<h2>Section 1</h2>"));
        assert!(page.contains("timestamp: 2020-02-25T14:35:38.204522Z"));
        assert!(page.contains("gender: male | age: 38-43 | event: exit"));
        assert!(page.contains("timestamp: 2020-02-25T14:35:27.224857Z"));
        assert!(page.contains("section: 1<br>"));
        assert!(page.contains("event: entry<br>"));
        assert!(page.contains("name: <b>PersonX</b>"));
        assert!(!page.contains("<svg"));
    }

    #[test]
    fn v2_marks_the_faces_on_the_photo() {
        let views = [SectionView {
            section: Id::new("1").unwrap(),
            latest: Some(record()),
            error: None,
        }];
        let page = dashboard(Variant::V2, &views, None, 2);
        assert!(page.contains("<h1>Dashboard V2</h1>"));
        assert!(page.contains("data:image/jpeg;base64,AAAA"));
        assert!(page.contains("<rect class=\"face\" x=\"1\" y=\"2\" width=\"3\" height=\"4\""));
        assert!(page.contains("no alerts"));
    }

    #[test]
    fn names_are_escaped() {
        let mut a = alert();
        a.name = "<script>x</script>".into();
        let page = dashboard(Variant::V1, &[], Some(&a), 2);
        assert!(page.contains("name: <b>&lt;script&gt;x&lt;/script&gt;</b>"));
        assert!(!page.contains("<script>"));
    }
}
