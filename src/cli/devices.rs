//! `cliptune devices`: what `--device auto|cpu|gpu` can pick from.
use cliptune::backend::wgpu::list_adapters;
use cliptune::backend::{Device, DeviceChoice};
use cliptune::Result;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn run(json: bool) -> Result<()> {
    let adapters = list_adapters();
    let auto = Device::select(DeviceChoice::Auto)?.name();
    let cpu = Device::Cpu.name();
    if json {
        let items: Vec<String> = adapters
            .iter()
            .map(|a| {
                format!(
                    "{{\"name\":\"{}\",\"backend\":\"{}\",\"type\":\"{}\",\"driver\":\"{}\",\"software\":{},\"max_storage_binding\":{},\"max_buffer\":{},\"max_workgroup_invocations\":{},\"max_shared_memory\":{}}}",
                    esc(&a.name), a.backend, a.device_type, esc(&a.driver), a.software, a.max_storage_binding, a.max_buffer, a.max_workgroup_invocations, a.max_shared_memory
                )
            })
            .collect();
        println!(
            "{{\"cpu\":\"{}\",\"auto\":\"{}\",\"adapters\":[{}]}}",
            esc(&cpu),
            esc(&auto),
            items.join(",")
        );
        return Ok(());
    }
    println!("cpu backend: {cpu}");
    if adapters.is_empty() {
        println!("GPU adapters: none (install a Vulkan driver; on Debian: mesa-vulkan-drivers libvulkan1)");
    }
    for a in &adapters {
        println!(
            "GPU adapter: {} [{} / {}]{}\n  driver {}; max storage binding {} MiB, max buffer {} MiB, {} invocations/workgroup, {} KiB shared memory",
            a.name,
            a.backend,
            a.device_type,
            if a.software { " (software: used only with --device gpu)" } else { "" },
            a.driver,
            a.max_storage_binding >> 20,
            a.max_buffer >> 20,
            a.max_workgroup_invocations,
            a.max_shared_memory >> 10
        );
    }
    println!("--device auto picks: {auto}");
    Ok(())
}
