//! `cliptune devices`: what `--device auto|cpu|gpu` and `--backend` can pick from, with
//! the limits the kernels need and which kernel families each adapter can run.
use cliptune::backend::wgpu::{compiled_apis, list_adapters, AdapterReport};
use cliptune::backend::{Device, DeviceChoice};
use cliptune::Result;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn families_json(a: &AdapterReport) -> String {
    let items: Vec<String> = a
        .families
        .iter()
        .map(|(f, v)| match v {
            Ok(()) => format!("\"{f}\":null"),
            Err(why) => format!("\"{f}\":\"{}\"", esc(why)),
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

pub fn run(json: bool) -> Result<()> {
    let adapters = list_adapters();
    // What auto (or --backend) would pick, or why nothing: `devices` itself must not fail.
    let auto = match Device::select(DeviceChoice::Auto) {
        Ok(d) => d.name(),
        Err(e) => format!("none ({e})"),
    };
    let cpu = Device::Cpu.name();
    let compiled: Vec<&str> = compiled_apis().iter().map(|a| a.name()).collect();
    if json {
        let items: Vec<String> = adapters
            .iter()
            .map(|a| {
                format!(
                    "{{\"name\":\"{}\",\"backend\":\"{}\",\"type\":\"{}\",\"driver\":\"{}\",\"software\":{},\"compute_shaders\":{},\"max_storage_binding\":{},\"max_buffer\":{},\"max_storage_buffers_per_stage\":{},\"max_workgroup_size\":[{},{},{}],\"max_workgroup_invocations\":{},\"max_shared_memory\":{},\"shader_f16\":{},\"subgroups\":{},\"timestamp_queries\":{},\"unsupported_families\":{}}}",
                    esc(&a.name), a.backend, a.device_type, esc(&a.driver), a.software, a.compute_shaders, a.max_storage_binding, a.max_buffer,
                    a.max_storage_buffers_per_stage, a.max_workgroup_size[0], a.max_workgroup_size[1], a.max_workgroup_size[2],
                    a.max_workgroup_invocations, a.max_shared_memory, a.shader_f16, a.subgroups, a.timestamps, families_json(a)
                )
            })
            .collect();
        println!(
            "{{\"cpu\":\"{}\",\"auto\":\"{}\",\"compiled_backends\":[{}],\"adapters\":[{}]}}",
            esc(&cpu),
            esc(&auto),
            compiled
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(","),
            items.join(",")
        );
        return Ok(());
    }
    println!("cpu backend: {cpu}");
    println!("GPU APIs compiled in: {}", compiled.join(", "));
    if adapters.is_empty() {
        println!(
            "GPU adapters: none (on Debian: mesa-vulkan-drivers libvulkan1 for Vulkan, libegl1 libgl1-mesa-dri for GL)"
        );
    }
    for a in &adapters {
        println!(
            "GPU adapter: {} [--backend {} / {}]{}\n  driver {}; compute shaders {}; max storage binding {} MiB, max buffer {} MiB, {} storage buffers per stage, workgroup size {}x{}x{}, {} invocations/workgroup, {} KiB workgroup memory",
            a.name,
            a.backend,
            a.device_type,
            if a.software { " (software: used only with --device gpu or --backend)" } else { "" },
            a.driver,
            if a.compute_shaders { "yes" } else { "no" },
            a.max_storage_binding >> 20,
            a.max_buffer >> 20,
            a.max_storage_buffers_per_stage,
            a.max_workgroup_size[0],
            a.max_workgroup_size[1],
            a.max_workgroup_size[2],
            a.max_workgroup_invocations,
            a.max_shared_memory >> 10
        );
        let yn = |b: bool| if b { "yes" } else { "no" };
        println!(
            "  optional features: shader f16 {}; subgroups {}; timestamp queries {}",
            yn(a.shader_f16),
            yn(a.subgroups),
            yn(a.timestamps)
        );
        let ok: Vec<&str> = a.families.iter().filter(|(_, v)| v.is_ok()).map(|(f, _)| *f).collect();
        println!(
            "  kernels that run here: {}",
            if ok.is_empty() { "none".into() } else { ok.join(", ") }
        );
        for (f, v) in &a.families {
            if let Err(why) = v {
                println!("  cannot run {f}: {why}");
            }
        }
        for (f, v) in &a.fast_variants {
            match v {
                Ok(()) => println!("  fast variant used: {f}"),
                Err(why) => println!("  fast variant not used: {f} ({why}); its plain kernel runs instead"),
            }
        }
    }
    println!("--device auto picks: {auto}");
    Ok(())
}
