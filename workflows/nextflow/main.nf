#!/usr/bin/env nextflow
/*
 * rctd as a Nextflow (DSL2) pipeline: one reference, many spatial samples.
 *
 *   RCTD_REFERENCE (once) -> RCTD_NORMALIZE -> RCTD_SIGMA -> RCTD_FIT_<MODE> x shards -> RCTD_MERGE
 *
 * Each process runs one rctd binary (on PATH, or in the container/module the profile gives)
 * with its public options.  Parameters: nextflow_schema.json and workflows/README.md.
 *
 *   nextflow run workflows/nextflow -profile local --input samples.csv --reference ref.h5ad
 */
nextflow.enable.dsl = 2

include { RCTD_REFERENCE   } from './modules/rctd_reference'
include { RCTD_NORMALIZE   } from './modules/rctd_normalize'
include { RCTD_SIGMA       } from './modules/rctd_sigma'
include { RCTD_FIT_FULL    } from './modules/rctd_fit_full'
include { RCTD_FIT_DOUBLET } from './modules/rctd_fit_doublet'
include { RCTD_FIT_MULTI   } from './modules/rctd_fit_multi'
include { RCTD_MERGE       } from './modules/rctd_merge'

/*
 * Sample sheet (CSV with a header): sample,spatial[,mode][,shards][,chunk_pixels].  Empty or
 * missing columns take --mode, --shards and --chunk_pixels.
 */
def sampleFromRow(row) {
    if (!row.sample) {
        error "rctd: ${params.input}: a row has no 'sample'; give sample,spatial[,mode,shards,chunk_pixels]"
    }
    if (!row.spatial) {
        error "rctd: ${params.input}: sample ${row.sample} has no 'spatial' file"
    }
    def modes = ['full', 'doublet', 'multi']
    def meta = [
        id          : row.sample,
        mode        : row.mode ?: params.mode,
        shards      : (row.shards ?: params.shards) as int,
        chunk_pixels: (row.chunk_pixels ?: params.chunk_pixels) as int,
    ]
    if (!(meta.mode in modes)) {
        error "rctd: ${params.input}: sample ${meta.id}: mode '${meta.mode}' is not one of ${modes.join(', ')}"
    }
    if (meta.shards < 1) {
        error "rctd: ${params.input}: sample ${meta.id}: shards must be at least 1"
    }
    return [ meta, file(row.spatial, checkIfExists: true) ]
}

workflow RCTD {
    take:
    ch_samples    // [ meta, spatial ]
    ch_reference  // [ meta, single-cell reference ]; empty when params.reference_stream is given

    main:
    ch_versions = Channel.empty()

    // The reference stream: built once (or taken from a shared location) and read by every sample.
    if (params.reference_stream) {
        ch_ref_stream = Channel.value(file(params.reference_stream, checkIfExists: true))
    } else {
        RCTD_REFERENCE(ch_reference)
        ch_ref_stream = RCTD_REFERENCE.out.stream.map { meta, stream -> stream }.first()
        ch_versions = ch_versions.mix(RCTD_REFERENCE.out.versions)
    }

    RCTD_NORMALIZE(ch_samples, ch_ref_stream)
    ch_versions = ch_versions.mix(RCTD_NORMALIZE.out.versions)

    RCTD_SIGMA(RCTD_NORMALIZE.out.model, params.cache_dir ?: '')
    ch_versions = ch_versions.mix(RCTD_SIGMA.out.versions)

    // One task per shard: shard I of N fits whole chunks of chunk_pixels pixels (see --shard in
    // rctd-fit-full(1)); the shards of a sample are independent and may run on any node.
    ch_fit = RCTD_SIGMA.out.model
        .flatMap { meta, model -> (1..meta.shards).collect { i -> [ meta + [shard: i], model ] } }
        .branch { meta, model ->
            full:    meta.mode == 'full'
            doublet: meta.mode == 'doublet'
            multi:   meta.mode == 'multi'
        }

    RCTD_FIT_FULL(ch_fit.full, params.cache_dir ?: '')
    RCTD_FIT_DOUBLET(ch_fit.doublet, params.cache_dir ?: '')
    RCTD_FIT_MULTI(ch_fit.multi, params.cache_dir ?: '')
    ch_versions = ch_versions.mix(
        RCTD_FIT_FULL.out.versions, RCTD_FIT_DOUBLET.out.versions, RCTD_FIT_MULTI.out.versions)

    // Gather the N shards of each sample as soon as its last shard is done (groupKey knows N).
    ch_merge = RCTD_FIT_FULL.out.shard
        .mix(RCTD_FIT_DOUBLET.out.shard, RCTD_FIT_MULTI.out.shard)
        .map { meta, shard -> [ groupKey(meta.id, meta.shards), shard ] }
        .groupTuple()
        .map { key, shards -> [ key.getGroupTarget(), shards ] }
        .join(ch_samples.map { meta, spatial -> [ meta.id, meta, spatial ] })
        .map { id, shards, meta, spatial -> [ meta, shards, spatial ] }

    RCTD_MERGE(ch_merge, params.formats)
    ch_versions = ch_versions.mix(RCTD_MERGE.out.versions)

    emit:
    h5ad     = RCTD_MERGE.out.h5ad
    csv      = RCTD_MERGE.out.csv
    json     = RCTD_MERGE.out.json
    versions = ch_versions
}

workflow {
    if (!params.input) {
        error "rctd: give --input SAMPLES.csv (sample,spatial[,mode,shards,chunk_pixels])"
    }
    if (!params.reference && !params.reference_stream) {
        error "rctd: give --reference (single-cell reference) or --reference_stream (built by rctd-reference)"
    }
    if (!(params.formats in ['h5ad', 'csv', 'h5ad,csv'])) {
        error "rctd: --formats must be h5ad, csv or h5ad,csv (not '${params.formats}')"
    }

    ch_samples = Channel.fromPath(params.input, checkIfExists: true)
        .splitCsv(header: true, strip: true)
        .map { row -> sampleFromRow(row) }

    ch_reference = params.reference_stream
        ? Channel.empty()
        : Channel.of([ [id: file(params.reference).baseName], file(params.reference, checkIfExists: true) ])

    RCTD(ch_samples, ch_reference)

    // One file with the version of every tool that ran (nf-core's software_versions.yml).
    RCTD.out.versions
        .map { it.text }
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
}
