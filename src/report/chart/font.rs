//! The charts' one font, DejaVu Sans (Bitstream Vera licence, assets/fonts/), compiled into
//! the binary and registered with plotters' ab_glyph text support. PNG text is rasterised
//! from it, so nothing depends on the fonts installed on the machine (CI runners and servers
//! often have none). SVG text names the same face first, then Bitstream Vera Sans (the face
//! DejaVu Sans extends, with the same Latin metrics), then the generic sans-serif: a viewer
//! with DejaVu Sans installed (most Linux desktops) shows exactly the PNG's letters, others
//! their closest face. The pages do not embed the font (750 kB per page); the PNG beside
//! each SVG is the exact picture.
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The family every chart's text uses: the name the font is registered under with plotters,
/// and the CSS `font-family` list its SVG text carries.
pub const FAMILY: &str = "DejaVu Sans, Bitstream Vera Sans, sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Register the embedded font with plotters (once per process; later calls are free).
pub fn ensure_registered() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .map_err(|_| "the embedded DejaVu Sans font (assets/fonts/DejaVuSans.ttf) does not parse".to_string())
    })
    .clone()
    .map_err(Error::invalid)
}

/// The embedded font for laying out PNG text directly (the charts' raster module).
pub fn font_ref() -> std::result::Result<ab_glyph::FontRef<'static>, String> {
    ab_glyph::FontRef::try_from_slice(DEJAVU_SANS)
        .map_err(|_| "the embedded DejaVu Sans font (assets/fonts/DejaVuSans.ttf) does not parse".to_string())
}
