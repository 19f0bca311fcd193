//! Every image of the corpus as a 64x64 RGB picture on white: the model sees no alpha, and
//! white is what an emoji sits on in a document.
use std::path::Path;

use image::{Rgb, RgbImage};
use resvg::{tiny_skia, usvg};

/// Side of every tile and train image, in pixels.
pub const SIZE: u32 = 64;

/// A PNG (any colour type) as SIZE x SIZE RGB, transparency composited onto white; a PNG of
/// another size is resized first (the Noto set is already 64x64).
pub fn png_on_white(path: &Path) -> Result<RgbImage, String> {
    let img = image::open(path).map_err(|e| format!("{}: cannot read PNG: {e}", path.display()))?;
    let mut rgba = img.to_rgba8();
    if rgba.dimensions() != (SIZE, SIZE) {
        rgba = image::imageops::resize(&rgba, SIZE, SIZE, image::imageops::FilterType::Lanczos3);
    }
    Ok(RgbImage::from_fn(SIZE, SIZE, |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u32::from(p[3]);
        // Straight alpha over white, rounded: c*a + 255*(255-a), over 255.
        let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        Rgb([over(p[0]), over(p[1]), over(p[2])])
    }))
}

/// An SVG rasterised to SIZE x SIZE: scaled to fit (aspect kept), centred, on white.
pub fn svg_on_white(path: &Path) -> Result<RgbImage, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: cannot read SVG: {e}", path.display()))?;
    let tree = usvg::Tree::from_data(&data, &usvg::Options::default())
        .map_err(|e| format!("{}: cannot parse SVG: {e}", path.display()))?;
    let (w, h) = (tree.size().width(), tree.size().height());
    let side = SIZE as f32;
    let scale = (side / w).min(side / h);
    let (tx, ty) = ((side - w * scale) / 2.0, (side - h * scale) / 2.0);
    let mut pixmap = tiny_skia::Pixmap::new(SIZE, SIZE).ok_or("cannot allocate a pixmap")?;
    // Drawing onto opaque white composites as we go, so the premultiplied pixels that come
    // out are already plain RGB.
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_row(scale, 0.0, 0.0, scale, tx, ty),
        &mut pixmap.as_mut(),
    );
    Ok(RgbImage::from_fn(SIZE, SIZE, |x, y| {
        let p = pixmap.pixel(x, y).expect("pixel inside the pixmap");
        Rgb([p.red(), p.green(), p.blue()])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_fit_and_centred_on_white() {
        let dir = std::env::temp_dir().join(format!("emoji-corpus-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A wide red rectangle filling its 32x16 viewBox: 64x32 once fit, rows 16..48.
        let p = dir.join("wide.svg");
        std::fs::write(
            &p,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 16"><rect width="32" height="16" fill="red"/></svg>"#,
        )
        .unwrap();
        let img = svg_on_white(&p).unwrap();
        assert_eq!(img.dimensions(), (SIZE, SIZE));
        assert_eq!(img.get_pixel(32, 5).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(32, 32).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(32, 58).0, [255, 255, 255]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
