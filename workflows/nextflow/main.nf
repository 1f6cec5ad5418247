#!/usr/bin/env nextflow
/*
 * rctd as a Nextflow (DSL2) pipeline in nf-core's shape: one reference, many spatial samples.
 *
 *   RCTD_REFERENCE (once) -> RCTD_NORMALIZE -> RCTD_SIGMA -> RCTD_FIT_<MODE> x shards -> RCTD_MERGE
 *
 * Each process runs one rctd binary (on PATH) with its public options; modules/local/<name>/.
 * Parameters: nextflow_schema.json; sample sheet: assets/schema_input.json; workflows/README.md.
 *
 *   nextflow run workflows/nextflow -profile local --input samples.csv --reference ref.h5ad
 *   nextflow run workflows/nextflow -profile test,local          (the bundled vignette)
 */

include { validateParameters; samplesheetToList } from 'plugin/nf-schema'

include { RCTD_REFERENCE   } from './modules/local/rctd_reference'
include { RCTD_NORMALIZE   } from './modules/local/rctd_normalize'
include { RCTD_SIGMA       } from './modules/local/rctd_sigma'
include { RCTD_FIT_FULL    } from './modules/local/rctd_fit_full'
include { RCTD_FIT_DOUBLET } from './modules/local/rctd_fit_doublet'
include { RCTD_FIT_MULTI   } from './modules/local/rctd_fit_multi'
include { RCTD_MERGE       } from './modules/local/rctd_merge'

workflow RCTD {
    take:
    ch_samples    // [ meta, spatial, coords_table, numi_table, class_table ]
    ch_reference  // [ meta, single-cell reference ]; empty when params.reference_stream is given
    cache_dir     // likelihood-table cache: an absolute path every task reaches, or ''

    main:
    ch_versions = channel.empty()

    // The reference stream: built once (or taken from a shared location) and read by every sample.
    if (params.reference_stream) {
        ch_ref_stream = channel.value(file(params.reference_stream, checkIfExists: true))
    } else {
        RCTD_REFERENCE(ch_reference)
        ch_ref_stream = RCTD_REFERENCE.out.stream.map { meta, stream -> stream }.first()
        ch_versions = ch_versions.mix(RCTD_REFERENCE.out.versions)
    }

    RCTD_NORMALIZE(ch_samples, ch_ref_stream)
    ch_versions = ch_versions.mix(RCTD_NORMALIZE.out.versions)

    RCTD_SIGMA(RCTD_NORMALIZE.out.model, cache_dir)
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

    RCTD_FIT_FULL(ch_fit.full, cache_dir)
    RCTD_FIT_DOUBLET(ch_fit.doublet, cache_dir)
    RCTD_FIT_MULTI(ch_fit.multi, cache_dir)
    ch_versions = ch_versions.mix(
        RCTD_FIT_FULL.out.versions, RCTD_FIT_DOUBLET.out.versions, RCTD_FIT_MULTI.out.versions)

    // Gather the N shards of each sample as soon as its last shard is done (groupKey knows N),
    // then add the sample's spatial input and coordinates table.
    ch_merge = RCTD_FIT_FULL.out.shard
        .mix(RCTD_FIT_DOUBLET.out.shard, RCTD_FIT_MULTI.out.shard)
        .map { meta, shard -> [ groupKey(meta.id, meta.shards), shard ] }
        .groupTuple()
        .map { key, shards -> [ key.getGroupTarget(), shards ] }
        .join(ch_samples.map { meta, spatial, coords_table, numi_table, class_table -> [ meta.id, meta, spatial, coords_table ] })
        .map { id, shards, meta, spatial, coords_table -> [ meta, shards, spatial, coords_table ] }

    RCTD_MERGE(ch_merge, params.formats)
    ch_versions = ch_versions.mix(RCTD_MERGE.out.versions)

    emit:
    h5ad     = RCTD_MERGE.out.h5ad
    csv      = RCTD_MERGE.out.csv
    json     = RCTD_MERGE.out.json
    versions = ch_versions
}

workflow {
    main:
    // Parameters against nextflow_schema.json, the sample sheet against assets/schema_input.json:
    // a missing column, a sample given twice, a file that does not exist or shards 0 stop the
    // run before any task, naming the row and the column.
    validateParameters()
    if (!params.reference && !params.reference_stream) {
        error "rctd: give --reference (single-cell reference) or --reference_stream (built by rctd-reference)"
    }

    // [ meta, spatial, coords_table, numi_table, class_table ]: meta holds id, mode, shards and
    // chunk_pixels; an empty table is [].
    ch_samples = channel
        .fromList(samplesheetToList(params.input, "${projectDir}/assets/schema_input.json"))
        // Empty mode, shards and chunk_pixels take --mode, --shards and --chunk_pixels.
        .map { meta, spatial, coords_table, numi_table, class_table ->
            [
                meta + [
                    mode        : meta.mode ?: params.mode,
                    shards      : meta.shards ?: params.shards,
                    chunk_pixels: meta.chunk_pixels ?: params.chunk_pixels,
                ],
                spatial, coords_table, numi_table, class_table,
            ]
        }

    ch_reference = params.reference_stream
        ? channel.empty()
        : channel.of([ [id: file(params.reference).baseName], file(params.reference, checkIfExists: true) ])

    // Not staged: the tables are added to the cache, so every task must reach the same directory.
    def cache_dir = params.cache_dir ? file(params.cache_dir).toAbsolutePath().toString() : ''

    RCTD(ch_samples, ch_reference, cache_dir)

    // One file with the version of every tool that ran (nf-core's software_versions.yml).
    RCTD.out.versions
        .map { versions -> versions.text }
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
}
