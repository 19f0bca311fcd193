//! Every WGSL compute entry point through naga's four writers, the ones wgpu uses for
//! each native API: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL), one
//! output per entry point. A construct one backend rejects fails here, naming the
//! shader, the entry point and the target, instead of on a user's Mac or Windows box.
use std::borrow::Cow;

use cliptune::backend::wgpu::requirements::{COMMON_WGSL, FAMILIES, FAST_VARIANTS};
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

/// Every `shaders/*.wgsl` but common.wgsl (prepended to each, as at pipeline creation).
fn shader_files() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut out = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") && name != "common.wgsl" {
            let src = std::fs::read_to_string(&path).unwrap();
            out.push((name, format!("{COMMON_WGSL}\n{src}")));
        }
    }
    out.sort();
    out
}

fn translate(shader: &str, module: &naga::Module, info: &ModuleInfo, entry: &str) -> Vec<String> {
    let stage = naga::ShaderStage::Compute;
    let mut failures = vec![];
    let mut fail = |target: &str, e: String| failures.push(format!("{shader} entry '{entry}' -> {target}: {e}"));

    let spv_opts = spv::Options::default();
    let spv_pipe = spv::PipelineOptions {
        shader_stage: stage,
        entry_point: entry.to_string(),
    };
    match spv::write_vec(module, info, &spv_opts, Some(&spv_pipe)) {
        Ok(words) if words.len() > 5 => {}
        Ok(words) => fail("SPIR-V", format!("only {} words", words.len())),
        Err(e) => fail("SPIR-V", e.to_string()),
    }

    let msl_pipe = msl::PipelineOptions {
        entry_point: Some((stage, entry.to_string())),
        ..Default::default()
    };
    match msl::write_string(module, info, &msl::Options::default(), &msl_pipe) {
        Ok((src, _)) if src.contains("kernel") => {}
        Ok(_) => fail("MSL", "no kernel function in the output".into()),
        Err(e) => fail("MSL", e.to_string()),
    }

    let hlsl_opts = hlsl::Options::default();
    let hlsl_pipe = hlsl::PipelineOptions {
        entry_point: Some((stage, entry.to_string())),
    };
    let mut hlsl_src = String::new();
    match hlsl::Writer::new(&mut hlsl_src, &hlsl_opts, &hlsl_pipe).write(module, info, None) {
        Ok(_) if hlsl_src.contains("numthreads") => {}
        Ok(_) => fail("HLSL", "no [numthreads] entry point in the output".into()),
        Err(e) => fail("HLSL", e.to_string()),
    }

    let glsl_opts = glsl::Options {
        version: glsl::Version::Embedded {
            version: 310,
            is_webgl: false,
        },
        ..Default::default()
    };
    let glsl_pipe = glsl::PipelineOptions {
        shader_stage: stage,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let mut glsl_src = String::new();
    let written = glsl::Writer::new(
        &mut glsl_src,
        module,
        info,
        &glsl_opts,
        &glsl_pipe,
        naga::proc::BoundsCheckPolicies::default(),
    )
    .and_then(|mut w| w.write());
    match written {
        Ok(_) if glsl_src.contains("#version 310 es") && glsl_src.contains("local_size_x") => {}
        Ok(_) => fail(
            "GLSL ES 3.1",
            "no '#version 310 es' compute shader in the output".into(),
        ),
        Err(e) => fail("GLSL ES 3.1", e.to_string()),
    }
    failures
}

#[test]
fn every_entry_point_translates_to_spirv_msl_hlsl_and_glsl_es() {
    let mut files = shader_files();
    assert!(files.len() >= 7, "expected the kernel shaders, found {files:?}");
    // The matmul variants are generated at run time: a covering set of them too.
    let generated = cliptune::backend::wgpu::matmul_variant_sources();
    assert!(
        generated.len() >= 16,
        "only {} generated matmul variants",
        generated.len()
    );
    files.extend(
        generated
            .into_iter()
            .map(|(name, src)| (format!("generated matmul {name}"), format!("{COMMON_WGSL}\n{src}"))),
    );
    let mut failures = vec![];
    let mut entries = 0;
    for (shader, src) in &files {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{shader}: WGSL parse error:\n{}", e.emit_to_string(src)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{shader}: WGSL validation error:\n{}", e.emit_to_string(src)));
        for ep in module
            .entry_points
            .iter()
            .filter(|e| e.stage == naga::ShaderStage::Compute)
        {
            // Override constants take their WGSL defaults, as a pipeline built without
            // constants would.
            let (m, i): (Cow<naga::Module>, Cow<ModuleInfo>) = if module.overrides.is_empty() {
                (Cow::Borrowed(&module), Cow::Borrowed(&info))
            } else {
                match naga::back::pipeline_constants::process_overrides(
                    &module,
                    &info,
                    Some((naga::ShaderStage::Compute, &ep.name)),
                    &Default::default(),
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{shader} entry '{}': override constants: {e}", ep.name));
                        continue;
                    }
                }
            };
            failures.extend(translate(shader, &m, &i, &ep.name));
            entries += 1;
        }
    }
    eprintln!("{entries} entry points translated to 4 targets");
    assert!(entries >= 20, "only {entries} compute entry points found");
    assert!(failures.is_empty(), "translation failures:\n{}", failures.join("\n"));
}

/// The requirements table the device check uses covers every shader file.
#[test]
fn every_shader_file_is_in_the_requirements_table() {
    let known: Vec<&str> = FAMILIES.iter().chain(FAST_VARIANTS).map(|(_, src)| *src).collect();
    for (shader, full) in shader_files() {
        let src = &full[COMMON_WGSL.len() + 1..];
        assert!(
            known.contains(&src),
            "{shader} is missing from requirements::FAMILIES and FAST_VARIANTS"
        );
    }
}

/// The table reads real numbers from the WGSL: the attention and matmul kernels use
/// workgroup memory, adamw binds 8 storage buffers, every kernel one params uniform.
#[test]
fn requirements_are_read_from_the_shaders() {
    use cliptune::backend::wgpu::requirements::analyze;
    let src = |family: &str| FAMILIES.iter().find(|(f, _)| *f == family).unwrap().1;
    let optim = analyze(src("optim"), &[]).unwrap();
    let adamw = optim.iter().find(|r| r.entry == "adamw").expect("adamw entry");
    assert_eq!(adamw.storage_buffers, 8, "{adamw:?}");
    assert_eq!(adamw.uniform_buffers, 1, "{adamw:?}");
    assert!(adamw.invocations() >= 64, "{adamw:?}");
    for family in ["matmul", "attention"] {
        let reqs = analyze(src(family), &[]).unwrap();
        assert!(
            reqs.iter().any(|r| r.workgroup_bytes > 0),
            "{family}: no workgroup memory in {reqs:?}"
        );
    }
    // A limit one below a kernel's need is named in the refusal.
    let mut limits = wgpu::Limits::default();
    limits.max_storage_buffers_per_shader_stage = 7;
    let why = cliptune::backend::wgpu::requirements::exceeded(adamw, &limits).expect("refused");
    assert!(
        why.contains("max_storage_buffers_per_shader_stage") && why.contains("needs 8"),
        "{why}"
    );
}

/// The subgroup variant of the tiled attention kernels (generated from attention.wgsl at
/// run time) translates for the APIs that offer subgroups: SPIR-V, MSL and HLSL. GL
/// adapters offer none, so the variant is never built there and GLSL ES is not asked.
#[test]
fn the_subgroup_attention_variant_translates_for_vulkan_metal_and_dx12() {
    let body = cliptune::backend::wgpu::attention_subgroup_source();
    assert!(
        body.contains("subgroupShuffleXor") && !body.contains("part_a[(r * T"),
        "the variant was not generated"
    );
    let src = format!("{COMMON_WGSL}\n{body}");
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("subgroup attention: WGSL parse error:\n{}", e.emit_to_string(&src)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("subgroup attention: validation error:\n{}", e.emit_to_string(&src)));
    let mut failures = vec![];
    for entry in ["attn_fwd", "attn_bwd_dq", "attn_bwd_dkv"] {
        failures.extend(
            translate("subgroup attention", &module, &info, entry)
                .into_iter()
                .filter(|f| !f.contains("-> GLSL ES 3.1")),
        );
    }
    assert!(failures.is_empty(), "translation failures:\n{}", failures.join("\n"));
}
