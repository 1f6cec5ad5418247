// rctd-normalize: spatial counts + reference stream -> model stream (gene lists, platform
// normalisation, filtered pixels).  coords_table, numi_table and class_table are optional
// ([] when the sample sheet leaves them empty).
process RCTD_NORMALIZE {
    tag "$meta.id"
    label 'process_medium'

    input:
    tuple val(meta), path(spatial), path(coords_table), path(numi_table), path(class_table)
    path reference

    output:
    tuple val(meta), path("*.rctd"), emit: model
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def coords = coords_table ? "--coords-table ${coords_table}" : ''
    def numi = numi_table ? "--numi-table ${numi_table}" : ''
    def classes = class_table ? "--class-table ${class_table}" : ''
    """
    rctd-normalize \\
        $coords \\
        $numi \\
        $classes \\
        $args \\
        --threads $task.cpus \\
        -o ${prefix}.model.rctd \\
        $spatial \\
        $reference

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-normalize: \$(rctd-normalize --version | sed 's/^rctd-normalize //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.model.rctd

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-normalize: \$(rctd-normalize --version | sed 's/^rctd-normalize //')
    END_VERSIONS
    """
}
