//! `tenancy tenants export|import`: streamed through the library's
//! `export_tenant_to` / `import_tenant_from`, so a tenant larger than memory moves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tenancy::{ArchiveOptions, ArchiveSummary};
use tokio::io::{AsyncWrite, BufReader, BufWriter};

use crate::cli::{Actor, One};
use crate::confirm::confirm;
use crate::connect::{Connect, Who, tenancy, tenant_id};
use crate::fail::Fail;
use crate::output::Out;
use crate::progress::Bytes;

pub async fn export(url: &str, one: &One, output: &Path, out: &Out) -> Result<(), Fail> {
    let who = Who::from_args(&one.actor)?;
    let to_stdout = output == Path::new("-");
    let t = tenancy(url, Connect::default()).await?;
    let id = tenant_id(&t, &one.tenant).await?;
    let su = who.superuser(&t).await?;
    let progress = Arc::new(Bytes::new(None));
    let p = Arc::clone(&progress);
    let options =
        ArchiveOptions::default().on_progress(move |x| p.update(&x.table, x.rows, x.bytes));
    let summary = if to_stdout {
        let mut w = BufWriter::new(tokio::io::stdout());
        t.export_tenant_to(&su, id, &mut w, options).await?
    } else {
        // Written under a temporary name and renamed when complete: a failed export leaves
        // no file that looks like an archive.
        let partial = partial_name(output);
        let result = write_file(&t, &su, id, &partial, options).await;
        match result {
            Ok(summary) => {
                tokio::fs::rename(&partial, output).await.map_err(|e| {
                    Fail::failed(format!(
                        "cannot rename {} to {}: {e}",
                        partial.display(),
                        output.display()
                    ))
                })?;
                summary
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        }
    };
    progress.finish();
    let text = format!(
        "exported {id}: {} row(s), {} table(s), {} bytes of data",
        summary.rows,
        summary.tables.len(),
        summary.bytes
    );
    if to_stdout {
        // The archive owns standard output; the summary goes to standard error.
        eprintln!("{text}");
    } else {
        out.line(&text, &summary_json(&summary));
    }
    Ok(())
}

async fn write_file(
    t: &tenancy::Tenancy,
    su: &tenancy::Superuser,
    id: tenancy::TenantId,
    path: &Path,
    options: ArchiveOptions,
) -> Result<ArchiveSummary, Fail> {
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Fail::failed(format!("cannot create {}: {e}", path.display())))?;
    let mut w = BufWriter::new(file);
    let summary = t.export_tenant_to(su, id, &mut w, options).await?;
    finish(w)
        .await
        .map_err(|e| Fail::failed(format!("writing {}: {e}", path.display())))?;
    Ok(summary)
}

async fn finish<W: AsyncWrite + Unpin>(mut w: BufWriter<W>) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    w.flush().await?;
    w.into_inner().flush().await
}

fn partial_name(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

pub async fn import(
    url: &str,
    file: &Path,
    into: &str,
    replace: bool,
    yes: bool,
    actor: &Actor,
    out: &Out,
) -> Result<(), Fail> {
    let who = Who::from_args(actor)?;
    let from_stdin = file == Path::new("-");
    if from_stdin && replace && !yes {
        // The archive is on standard input, so nobody can answer a prompt there.
        return Err(Fail::usage(
            "refusing to import --replace from standard input without --yes",
        ));
    }
    let size = if from_stdin {
        None
    } else {
        let meta = tokio::fs::metadata(file)
            .await
            .map_err(|e| Fail::usage(format!("{}: {e}", file.display())))?;
        Some(meta.len())
    };
    let t = tenancy(url, Connect::default()).await?;
    let id = tenant_id(&t, into).await?;
    if replace {
        confirm(
            yes,
            &format!("replace every row of tenant {into} ({id}) with the archive's"),
            into,
        )?;
    }
    let su = who.superuser(&t).await?;
    let progress = Arc::new(Bytes::new(size));
    let p = Arc::clone(&progress);
    let options = ArchiveOptions::default()
        .replace(replace)
        .on_progress(move |x| p.update(&x.table, x.rows, x.bytes));
    let summary = if from_stdin {
        let mut r = BufReader::new(tokio::io::stdin());
        t.import_tenant_from(&su, &mut r, id, options).await?
    } else {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Fail::failed(format!("cannot open {}: {e}", file.display())))?;
        let mut r = BufReader::with_capacity(256 * 1024, f);
        t.import_tenant_from(&su, &mut r, id, options).await?
    };
    progress.finish();
    out.line(
        &format!(
            "imported {} row(s) in {} table(s) into {id}",
            summary.rows,
            summary.tables.len()
        ),
        &summary_json(&summary),
    );
    Ok(())
}

fn summary_json(s: &ArchiveSummary) -> Value {
    crate::output::json_of(s)
}
