//! PNG text placed glyph by glyph. plotters 0.3.7's ab_glyph text drawing drops each
//! glyph's left side bearing and puts the baseline at half the font size, so capitals such
//! as "MNIST" come out unevenly spaced and text sits off its anchor. [`GlyphText`] wraps a
//! pixel backend, passes every shape through unchanged and lays text out itself with
//! ab_glyph (advances, kerning, bearings, the font's ascent), anchored and rotated the way
//! plotters asks. The SVG backend needs none of this: there the browser lays the text out.
use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::backend::DrawingBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

use super::font;

/// A backend whose text is drawn by [`draw_glyphs`]; everything else goes to `B`.
pub struct GlyphText<B: DrawingBackend> {
    pub inner: B,
    font: FontRef<'static>,
}

impl<B: DrawingBackend> GlyphText<B> {
    pub fn new(inner: B) -> Result<Self, String> {
        Ok(GlyphText {
            inner,
            font: font::font_ref()?,
        })
    }
}

type Res<E> = Result<(), DrawingErrorKind<E>>;

impl<B: DrawingBackend> DrawingBackend for GlyphText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Res<B::ErrorType> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Res<B::ErrorType> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Res<B::ErrorType> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(&mut self, a: BackendCoord, b: BackendCoord, s: &S) -> Res<B::ErrorType> {
        self.inner.draw_line(a, b, s)
    }
    fn draw_rect<S: BackendStyle>(&mut self, a: BackendCoord, b: BackendCoord, s: &S, fill: bool) -> Res<B::ErrorType> {
        self.inner.draw_rect(a, b, s, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, p: I, s: &S) -> Res<B::ErrorType> {
        self.inner.draw_path(p, s)
    }
    fn draw_circle<S: BackendStyle>(&mut self, c: BackendCoord, r: u32, s: &S, fill: bool) -> Res<B::ErrorType> {
        self.inner.draw_circle(c, r, s, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        v: I,
        s: &S,
    ) -> Res<B::ErrorType> {
        self.inner.fill_polygon(v, s)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Res<B::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Res<B::ErrorType> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let (w, h) = self.get_size();
        let trans = style.transform();
        let mut result = Ok(());
        draw_glyphs(&self.font, text, style.size() as f32, style.anchor(), |x, y, cov| {
            let (x, y) = trans.transform(x, y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if result.is_ok() && x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                result = self.inner.draw_pixel(
                    (x, y),
                    BackendColor {
                        alpha: colour.alpha * cov as f64,
                        rgb: colour.rgb,
                    },
                );
            }
        });
        result
    }
}

/// Rasterise `text` at `size` px (ascent to descent, as plotters' sizes are), calling
/// `pixel(x, y, coverage)` relative to the anchor point `anchor` names.
pub fn draw_glyphs(
    font: &FontRef<'static>,
    text: &str,
    size: f32,
    anchor: plotters_backend::text_anchor::Pos,
    mut pixel: impl FnMut(i32, i32, f32),
) {
    let scaled = font.as_scaled(size);
    let mut glyphs = vec![];
    let mut caret = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(size, point(caret, scaled.ascent())));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    let (width, height) = (caret.round() as i32, scaled.height().round() as i32);
    let dx = match anchor.h_pos {
        HPos::Left => 0,
        HPos::Right => -width,
        HPos::Center => -width / 2,
    };
    let dy = match anchor.v_pos {
        VPos::Top => 0,
        VPos::Center => -height / 2,
        VPos::Bottom => -height,
    };
    for g in glyphs {
        if let Some(outline) = font.outline_glyph(g) {
            let b = outline.px_bounds();
            let (ox, oy) = (b.min.x as i32 + dx, b.min.y as i32 + dy);
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    pixel(ox + x as i32, oy + y as i32, cov.min(1.0));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters_backend::text_anchor::Pos;

    fn ink(text: &str, anchor: Pos) -> Vec<(i32, i32)> {
        let f = font::font_ref().unwrap();
        let mut px = vec![];
        draw_glyphs(&f, text, 20.0, anchor, |x, y, c| {
            if c > 0.5 {
                px.push((x, y))
            }
        });
        px
    }

    #[test]
    fn glyphs_keep_their_bearings_and_anchor() {
        let top_left = ink("MNIST", Pos::new(HPos::Left, VPos::Top));
        assert!(!top_left.is_empty());
        let (minx, maxx) = (
            top_left.iter().map(|p| p.0).min().unwrap(),
            top_left.iter().map(|p| p.0).max().unwrap(),
        );
        let (miny, maxy) = (
            top_left.iter().map(|p| p.1).min().unwrap(),
            top_left.iter().map(|p| p.1).max().unwrap(),
        );
        // Capitals start one bearing right of the anchor and sit inside the line box.
        assert!((0..=4).contains(&minx), "{minx}");
        assert!(miny >= 0 && maxy <= 20, "{miny}..{maxy}");
        // Every letter shows up: no column gap wider than a letter's inner space.
        let mut cols: Vec<i32> = top_left.iter().map(|p| p.0).collect();
        cols.sort();
        cols.dedup();
        let widest_gap = cols.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest_gap <= 6, "uneven letter spacing: gap {widest_gap}");
        // Right/bottom anchoring moves the same ink left/up by the text's box.
        let br = ink("MNIST", Pos::new(HPos::Right, VPos::Bottom));
        assert!(
            br.iter().all(|p| p.0 <= 1 && p.1 <= 1),
            "ink past the bottom-right anchor"
        );
        assert_eq!(br.len(), top_left.len());
        assert!(maxx > minx + 40);
    }
}
