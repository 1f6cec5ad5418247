// rctd-merge: the result shards of one sample (any order) -> h5ad (a copy of the spatial h5ad
// with the results, or a fresh one with coords_table's coordinates), spacexr's CSV layout, or
// both, and a JSON summary.  Refuses a missing, duplicated or foreign shard.  formats: 'h5ad',
// 'csv' or 'h5ad,csv'.
process RCTD_MERGE {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(shards, stageAs: 'shards/*'), path(spatial, stageAs: 'spatial/*'), path(coords_table)
    val formats

    output:
    tuple val(meta), path("*.h5ad"), optional: true, emit: h5ad
    tuple val(meta), path("*_csv") , optional: true, emit: csv
    tuple val(meta), path("*.json"), emit: json
    path "versions.yml"            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def coords = coords_table ? "--coords-table ${coords_table}" : ''
    def target = formats.startsWith('h5ad') ? "${prefix}.h5ad" : "${prefix}_csv"
    def csv_dir = formats == 'h5ad,csv' ? "--csv-dir ${prefix}_csv" : ''
    """
    rctd-merge \\
        $coords \\
        $args \\
        --spatial $spatial \\
        --format $formats \\
        $csv_dir \\
        --json ${prefix}.json \\
        --threads $task.cpus \\
        -o $target \\
        $shards

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-merge: \$(rctd-merge --version | sed 's/^rctd-merge //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    def h5ad = formats.startsWith('h5ad') ? "touch ${prefix}.h5ad" : ''
    def csv = formats.endsWith('csv') ? "mkdir -p ${prefix}_csv" : ''
    """
    $h5ad
    $csv
    echo '{}' > ${prefix}.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-merge: \$(rctd-merge --version | sed 's/^rctd-merge //')
    END_VERSIONS
    """
}
